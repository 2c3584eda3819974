"""An order's follow-up events: its status moves, and the event saying so is written with it.

Every function here runs inside a consumer's effect transaction (the handler's
session): the status change, the event in the orders outbox (outbox.store.add_event)
and the consumer's delivery record commit together or not at all. The status
only moves forward from the statuses named (`UPDATE ... WHERE status IN ...`):
whatever runs twice by mistake finds nothing to move and writes no event.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from orders.models import ADDRESS_FIELDS, Order
from outbox.clock import new_id, utcnow
from outbox.store import add_event
from outbox.versions import VERSION_KEY

# The follow-up events (who hears them: orders/subscriptions.py, shipping/subscriptions.py).
ORDER_RESERVED = "order.reserved"  # inventory took every line: the shipping service books it
ORDER_BACKORDERED = "order.backordered"  # some line waits for stock: the customer is told
ORDER_SHIPPED = "order.shipped"  # the shipping service booked it: the customer is told
ORDER_CANCELLED = "order.cancelled"  # it could not be shipped: refunded, stock released, told
# What the shipping service writes (shipping/booking.py), heard by the fulfilment consumer.
SHIPMENT_BOOKED = "shipment.booked"
SHIPMENT_REJECTED = "shipment.rejected"
# Each one's schema version (declared in orders/subscriptions.py).
ORDER_STATUS_VERSION = 1

_orders = cast(Table, Order.__table__)


def move_status(session: Session, *, order_id: str, from_statuses: Iterable[str], to: str,
                event_type: str, columns: dict[str, Any] | None = None, needs_address: bool = False,
                **extra: Any) -> str | None:
    """Move the order to `to` (setting `columns` too) and write `event_type` for it, its payload
    carrying `extra`; the event id, or None when the order is not in one of `from_statuses`
    (nothing written).

    `needs_address`: the event is for shipping it. An order placed before addresses were asked
    for (migration 0008: its address columns are null) has nowhere to ship to: its status
    moves, and no event is written (docs/workflow.md, "Upgrading")."""
    row = session.execute(
        update(_orders)
        .where(_orders.c.id == order_id, _orders.c.status.in_(list(from_statuses)))
        .values(status=to, **(columns or {}))
        .returning(_orders.c.customer_email, _orders.c.customer_name,
                   *(_orders.c[f"ship_{name}"] for name in ADDRESS_FIELDS))
    ).one_or_none()
    if row is None:
        return None
    address = {name: getattr(row, f"ship_{name}") for name in ADDRESS_FIELDS}
    if needs_address and address["line1"] is None:
        return None
    event_id = new_id()
    payload = {
        VERSION_KEY: ORDER_STATUS_VERSION,
        # A consumer of several event types tells them apart by this (outbox/versions.py).
        "event_type": event_type,
        "event_id": event_id,
        "order_id": order_id,
        "status": to,
        "customer_email": row.customer_email,
        "customer_name": row.customer_name,
        "shipping_address": address if address["line1"] is not None else None,
        **extra,
        "occurred_at": utcnow().isoformat(),
    }
    return add_event(session, event_type=event_type, aggregate_id=order_id, payload=payload,
                     event_id=event_id)
