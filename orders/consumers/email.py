"""Email: send the order confirmation over SMTP, classifying failures for the retry policy.

4xx replies, refused connections and timeouts are transient (retry with
backoff); 5xx replies are permanent (dead letter at once).
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

from orders.errors import PermanentError, TransientError


def send_confirmation(
    *, smtp_url: str, mail_from: str, event_id: str, payload: dict[str, Any], timeout: float = 10.0
) -> None:
    message = confirmation_message(mail_from=mail_from, event_id=event_id, payload=payload)
    send_message(smtp_url=smtp_url, message=message, timeout=timeout)


def send_message(*, smtp_url: str, message: EmailMessage, timeout: float = 10.0) -> None:
    """Send over SMTP; raise TransientError (retry) or PermanentError (give up)."""
    target = urlsplit(smtp_url)
    try:
        with smtplib.SMTP(target.hostname or "127.0.0.1", target.port or 25, timeout=timeout) as smtp:
            if target.username:
                smtp.starttls()
                smtp.login(unquote(target.username), unquote(target.password or ""))
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reply = next(iter(exc.recipients.values()))
        raise _classify(code, reply) from exc
    except smtplib.SMTPResponseException as exc:
        raise _classify(exc.smtp_code, exc.smtp_error) from exc
    except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timeout, disconnected
        raise TransientError(f"SMTP unreachable: {exc!r}") from exc


def confirmation_message(*, mail_from: str, event_id: str, payload: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = payload["customer_email"]
    message["Subject"] = f"Your order {payload['order_id']} is confirmed"
    # Stable per event: a receiver can drop the copy of a re-sent confirmation.
    message["Message-ID"] = f"<{event_id}.confirmation@orderflow>"
    message["X-Orderflow-Event"] = event_id
    lines = "\n".join(
        f"  {ln['quantity']} x {ln['name']} ({ln['sku']})" for ln in payload["lines"]
    )
    total = f"{payload['total_cents'] / 100:.2f} {payload['currency']}"
    name = payload.get("customer_name") or "customer"
    message.set_content(f"Hello {name},\n\nthank you for your order:\n{lines}\n\nTotal: {total}\n")
    return message


def _classify(code: int, reply: bytes | str) -> Exception:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    if 400 <= code < 500:
        return TransientError(f"SMTP {code} {text}")
    return PermanentError(f"SMTP {code} {text}")
