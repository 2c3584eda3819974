"""Which SMTP failures belong to one message (permanent) and which to the server (transient).

The rule is the cause, not the number alone: a reply about this message's
recipient, sender or content is that delivery's permanent failure when it is
5xx (dead letter at once, with a reason a person understands) and transient
when it is 4xx (greylisting 450/451, a full mailbox 452: it may pass later).
Everything about the session itself — refused connection, timeout, hang-up,
the greeting, EHLO, STARTTLS or AUTH refused, 421 "closing" at any step — is a
failure of the downstream: transient, whatever its code, because the next
message would fail the same way and the operator must see the server, not a
pile of dead letters. docs/failures.md has the table, each row with its test.
"""

from __future__ import annotations

import smtplib

from orders.errors import OrderflowError, PermanentError, TransientError

NO_SMTPUTF8 = "the mail server does not accept internationalized addresses"


def classify(exc: OSError | smtplib.SMTPException) -> OrderflowError:
    """The error the delivery raises for an smtplib/socket failure (its text keeps `SMTP <code>`)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()))
        return _per_message(code, reply, "the mail server refused the recipient")
    if isinstance(exc, (smtplib.SMTPSenderRefused, smtplib.SMTPDataError)):
        # MAIL FROM (where the SIZE= smtplib declares is judged) or the content after DATA.
        what = ("the message is too large for the mail server" if exc.smtp_code == 552
                else "the mail server refused the message")
        return _per_message(exc.smtp_code, exc.smtp_error, what)
    if isinstance(exc, smtplib.SMTPResponseException):  # greeting, EHLO/HELO, STARTTLS, AUTH
        return TransientError(f"the mail server refused the session ({_smtp(exc.smtp_code, exc.smtp_error)})")
    if isinstance(exc, smtplib.SMTPNotSupportedError):  # STARTTLS or AUTH not offered
        return TransientError(f"the mail server lacks what the session needs: {exc}")
    return TransientError(f"SMTP unreachable: {exc!r}")  # refused, reset, timeout, disconnected


def _per_message(code: int, reply: bytes | str, permanent_reason: str) -> OrderflowError:
    # 4xx (421 "closing the channel" included) may pass later; 5xx about this message never will.
    if code >= 500:
        return PermanentError(f"{permanent_reason} ({_smtp(code, reply)})")
    return TransientError(f"the mail server asked to try again later ({_smtp(code, reply)})")


def _smtp(code: int, reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return f"SMTP {code} {text}"
