"""Email: send the order confirmation over SMTP, classifying failures for the retry policy.

4xx replies, refused connections and timeouts are transient (retry with
backoff); 5xx replies are permanent (dead letter at once).

`SmtpSession` keeps one connection for several messages (a batch of
deliveries): connecting, EHLO and QUIT are paid once per batch, not per mail.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage, Message
from email.mime.text import MIMEText
from typing import Any
from urllib.parse import unquote, urlsplit

from config.settings import Settings
from orders.errors import PermanentError, TransientError


@contextmanager
def confirmation_sender(settings: Settings) -> Iterator[Callable[[object, str, dict[str, Any]], None]]:
    """The email consumer's handler for one message: one SMTP connection for all its mails."""
    with SmtpSession(settings.smtp_url) as smtp:
        def send(_session: object, event_id: str, payload: dict[str, Any]) -> None:
            send_confirmation(smtp=smtp, mail_from=settings.mail_from, event_id=event_id, payload=payload)

        yield send


def send_confirmation(
    *, smtp: SmtpSession, mail_from: str, event_id: str, payload: dict[str, Any]
) -> None:
    smtp.send(confirmation_message(mail_from=mail_from, event_id=event_id, payload=payload))


def send_message(*, smtp_url: str, message: Message, timeout: float = 10.0) -> None:
    """Send one message on its own connection; raise TransientError (retry) or PermanentError."""
    with SmtpSession(smtp_url, timeout=timeout) as smtp:
        smtp.send(message)


class SmtpSession:
    """One SMTP connection, opened on the first `send`, reused by the next ones.

    After any failure the connection is dropped and the next `send` opens a new
    one: a server that answered 4xx/5xx or hung up mid-message starts clean.
    """

    def __init__(self, smtp_url: str, *, timeout: float = 10.0):
        self._target = urlsplit(smtp_url)
        self._timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: Message) -> None:
        """Raise TransientError (retry later) or PermanentError (give up) when not accepted."""
        try:
            self._connection().send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            self.close()
            code, reply = next(iter(exc.recipients.values()))
            raise _classify(code, reply) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise _classify(exc.smtp_code, exc.smtp_error) from exc
        except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timeout, disconnected
            self.close()
            raise TransientError(f"SMTP unreachable: {exc!r}") from exc

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()  # the server is gone or confused: just drop the socket

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            target = self._target
            smtp = smtplib.SMTP(target.hostname or "127.0.0.1", target.port or 25, timeout=self._timeout)
            try:
                if target.username:
                    smtp.starttls()
                    smtp.login(unquote(target.username), unquote(target.password or ""))
            except BaseException:
                smtp.close()
                raise
            self._smtp = smtp
        return self._smtp

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def confirmation_message(*, mail_from: str, event_id: str, payload: dict[str, Any]) -> Message:
    headers = {
        "From": mail_from,
        "To": payload["customer_email"],
        "Subject": f"Your order {payload['order_id']} is confirmed",
        # Stable per event: a receiver can drop the copy of a re-sent confirmation.
        "Message-ID": f"<{event_id}.confirmation@orderflow>",
        "X-Orderflow-Event": event_id,
    }
    lines = "\n".join(
        f"  {ln['quantity']} x {ln['name']} ({ln['sku']})" for ln in payload["lines"]
    )
    total = f"{payload['total_cents'] / 100:.2f} {payload['currency']}"
    name = payload.get("customer_name") or "customer"
    body = f"Hello {name},\n\nthank you for your order:\n{lines}\n\nTotal: {total}\n"
    message: Message
    if all(value.isascii() for value in headers.values()):
        # The usual case. The classic API builds and flattens a plain-text message about five
        # times cheaper than EmailMessage's header registry (1.1 -> 0.2 ms, most of an email
        # delivery's own CPU); the body may still be any Unicode (utf-8, base64).
        message = MIMEText(body, "plain", "us-ascii" if body.isascii() else "utf-8")
    else:  # non-ASCII addresses or subject: let EmailMessage encode the headers properly
        message = EmailMessage()
        message.set_content(body)
    for header, value in headers.items():
        message[header] = value
    return message


def _classify(code: int, reply: bytes | str) -> Exception:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    if 400 <= code < 500:
        return TransientError(f"SMTP {code} {text}")
    return PermanentError(f"SMTP {code} {text}")
