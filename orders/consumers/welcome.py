"""Welcome email after signup: an `in_process` subscriber of `customer.signed_up`.

Runs in the web process right after the signup commits (no broker, no delivery
record). A failure is logged by the dispatcher and the mail is not sent again:
acceptable for a welcome mail, which is why it is in-process and an order
confirmation is not.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from config.settings import Settings
from orders.consumers.email import send_message
from orders.mail_addresses import mailbox, recipient
from orders.text import one_line

# Short: it runs in the request after the commit, and the user is waiting.
SMTP_TIMEOUT_SECONDS = 5.0


def send_welcome(*, event_id: str, payload: dict[str, Any], settings: Settings) -> None:
    message = welcome_message(mail_from=settings.mail_from, event_id=event_id, payload=payload)
    send_message(smtp_url=settings.smtp_url, message=message, timeout=SMTP_TIMEOUT_SECONDS)


def welcome_message(*, mail_from: str, event_id: str, payload: dict[str, Any]) -> EmailMessage:
    to = recipient(payload.get("email"))
    name = one_line(str(payload.get("name") or ""))
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = mailbox(name, to)
    message["Subject"] = "Welcome to orderflow"
    message["Message-ID"] = f"<{event_id}.welcome@orderflow>"
    message["X-Orderflow-Event"] = event_id
    message.set_content(f"Hello {name or 'there'},\n\nwelcome! Your account {payload['email']} is ready.\n")
    return message
