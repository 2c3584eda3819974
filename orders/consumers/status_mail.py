"""The customer's mails about what happened to the order after it was placed: some items
delayed (order.backordered), shipped (order.shipped), cancelled and refunded (order.cancelled).

One consumer, `customer_mail`, hears the three events: its payloads say their
`event_type` (orders/order_events.py), which picks the mail. Failures are classified
as for the confirmation (smtp_failures.py); the Message-ID is stable per event, so a
receiver can drop the copy of a mail re-sent after a crash between SMTP and the
delivery record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.headerregistry import Address
from email.message import Message
from typing import Any

from config.settings import Settings
from orders.consumers.email import SmtpSession, build_message
from orders.consumers.payload import reading_payload
from orders.errors import PermanentError
from orders.mail_addresses import mailbox, recipient
from orders.text import one_line


@contextmanager
def status_mail_sender(settings: Settings) -> Iterator[Callable[[object, str, dict[str, Any]], None]]:
    """The handler for one message: one SMTP connection for all its mails."""
    with SmtpSession(settings.smtp_url) as smtp:
        def send(_session: object, event_id: str, payload: dict[str, Any]) -> None:
            smtp.send(status_message(mail_from=settings.mail_from, event_id=event_id, payload=payload))

        yield send


def status_message(*, mail_from: str, event_id: str, payload: dict[str, Any]) -> Message:
    """The mail for this event, or PermanentError when the payload cannot make one."""
    to = recipient(payload.get("customer_email") if isinstance(payload, dict) else None)
    event_type = payload.get("event_type")
    with reading_payload(str(event_type)):
        write = _WRITERS.get(str(event_type))
        if write is None:
            raise PermanentError(f"no customer mail for event type {event_type!r}")
        name = one_line(str(payload.get("customer_name") or ""))
        subject, text = write(payload)
    headers: dict[str, str | Address] = {
        "From": mail_from,
        "To": mailbox(name, to),
        "Subject": one_line(subject),
        "Message-ID": f"<{event_id}.{str(event_type).replace('.', '-')}@orderflow>",
        "X-Orderflow-Event": event_id,
    }
    return build_message(headers, f"Hello {name or 'customer'},\n\n{text}\n")


def _delayed(payload: dict[str, Any]) -> tuple[str, str]:
    waiting = [f"  {int(ln['quantity'])} x {one_line(str(ln['sku']))}"
               for ln in payload["lines"] if ln["fulfilment"] != "reserved"]
    return (f"Some items of your order {payload['order_id']} are delayed",
            "these items are out of stock for now; we send them as soon as they are back:\n"
            + "\n".join(waiting))


def _shipped(payload: dict[str, Any]) -> tuple[str, str]:
    return (f"Your order {payload['order_id']} has shipped",
            f"your order is on its way with {one_line(str(payload['carrier']))}, "
            f"tracking number {one_line(str(payload['tracking_number']))}.")


def _cancelled(payload: dict[str, Any]) -> tuple[str, str]:
    return (f"Your order {payload['order_id']} is cancelled",
            f"we could not ship your order: {one_line(str(payload['reason']))}.\n"
            f"Your payment is refunded (refund {one_line(str(payload['refund_id']))}).")


_WRITERS: dict[str, Callable[[dict[str, Any]], tuple[str, str]]] = {
    "order.backordered": _delayed,
    "order.shipped": _shipped,
    "order.cancelled": _cancelled,
}
