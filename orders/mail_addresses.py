"""Addresses and header text for mails built from user data.

- The domain is always sent in its IDNA (punycode) form: plain ASCII that every
  server takes, so `ada@exämple.de` needs nothing special.
- A non-ASCII local part (`jürgen@example.de`) can only travel with SMTPUTF8;
  `SmtpSession` checks that the server offers it (orders/consumers/email.py).
- A display name is reduced to one line of printable text (orders/text.py) and
  then quoted or RFC 2047-encoded by the email package: no input can end the
  header and start another one.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import formataddr

from email_validator import EmailNotValidError, validate_email

from orders.errors import PermanentError
from orders.text import one_line


@dataclass(frozen=True)
class Recipient:
    local_part: str
    domain: str  # ASCII: the IDNA form of the domain

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"

    @property
    def international(self) -> bool:
        """Needs SMTPUTF8: only a non-ASCII local part does, the domain is ASCII already."""
        return not self.local_part.isascii()


def recipient(address: object) -> Recipient:
    """The address as it is sent, or PermanentError: no server will ever take it."""
    if not isinstance(address, str):
        raise PermanentError(f"the recipient address is missing or not text: {address!r}")
    try:
        # The API validated it with the same library (pydantic's EmailStr); an event written
        # by another application or an older version may still carry anything.
        valid = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise PermanentError(f"the address {address!r} cannot receive mail: {exc}") from None
    return Recipient(valid.local_part, valid.ascii_domain)


def mailbox(name: str, to: Recipient) -> str | Address:
    """The To header's value: `Name <address>`, the name on one line and encoded."""
    display = one_line(name)
    if to.international:
        # formataddr refuses non-ASCII addresses; the header registry writes it as UTF-8,
        # which the SMTPUTF8 session sends as is.
        return Address(display_name=display, username=to.local_part, domain=to.domain)
    return formataddr((display, to.address))
