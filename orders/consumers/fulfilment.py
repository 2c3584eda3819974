"""Fulfilment: what the orders service does with the shipping service's answer.

`shipment.booked`: the order is `shipped` (its tracking number kept) and order.shipped
is written for the customer's mail. `shipment.rejected`: the compensation, every step
in the transaction that records this delivery, so each happens exactly once:

1. refund the payment by a direct call to the gateway, idempotent by payment id (a
   retry after a crash before the commit is told the same refund, and refunds nothing more);
2. give the reserved stock back, line by line;
3. `cancelled`, with the refund's id, and order.cancelled for the customer's mail.

An order no longer `reserved` (shipped or cancelled already) is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from config.settings import Settings
from orders.consumers.payload import reading_payload
from orders.errors import PermanentError
from orders.models import CANCELLED, RESERVED, SHIPPED, Order, OrderLine, Product
from orders.order_events import (
    ORDER_CANCELLED,
    ORDER_SHIPPED,
    SHIPMENT_BOOKED,
    SHIPMENT_REJECTED,
    move_status,
)
from orders.payments import PaymentGateway, SimulatedGateway
from outbox.clock import utcnow

RELEASED = "released"  # a line's fulfilment once its stock went back


@contextmanager
def shipment_applier(settings: Settings) -> Iterator[Callable[[Session, str, dict[str, Any]], str | None]]:
    """The fulfilment consumer's handler for one message, with the configured gateway."""
    gateway = SimulatedGateway(settings.payment_timeout_seconds, ledger=settings.payments_ledger)

    def handle(session: Session, event_id: str, payload: dict[str, Any]) -> str | None:
        return apply_shipment(session, gateway=gateway, payload=payload)

    yield handle


def apply_shipment(session: Session, *, gateway: PaymentGateway, payload: dict[str, Any]) -> str | None:
    """The order's new status, or None when it was not `reserved` any more."""
    with reading_payload("shipment"):
        event_type, order_id = payload["event_type"], str(payload["order_id"])
        if event_type == SHIPMENT_BOOKED:
            carrier, tracking = str(payload["carrier"]), str(payload["tracking_number"])
        elif event_type == SHIPMENT_REJECTED:
            reason = str(payload.get("reason") or "the carrier refused the parcel")
        else:
            raise PermanentError(f"fulfilment does not handle {event_type!r}")
    if event_type == SHIPMENT_BOOKED:
        moved = move_status(session, order_id=order_id, from_statuses=[RESERVED], to=SHIPPED,
                            event_type=ORDER_SHIPPED, columns={"tracking_number": tracking},
                            carrier=carrier, tracking_number=tracking)
        return SHIPPED if moved else None
    return cancel(session, gateway=gateway, order_id=order_id, reason=reason)


def cancel(session: Session, *, gateway: PaymentGateway, order_id: str, reason: str) -> str | None:
    """The compensation (module docstring); None when the order is not `reserved`."""
    # FOR UPDATE (PostgreSQL): a concurrent copy of this delivery waits here, then finds the
    # order cancelled; SQLite has one writer at a time anyway.
    order = session.execute(select(_orders.c.payment_id, _orders.c.status)
                            .where(_orders.c.id == order_id).with_for_update()).one_or_none()
    if order is None or order.status != RESERVED:
        return None
    refund_id = gateway.refund(payment_id=order.payment_id)
    reserved = session.execute(select(_lines.c.sku, _lines.c.quantity)
                               .where(_lines.c.order_id == order_id, _lines.c.fulfilment == RESERVED)
                               .order_by(_lines.c.sku)).all()  # sku order: no deadlock with inventory
    if reserved:
        session.execute(_GIVE_BACK, [{"wanted_sku": sku, "quantity": quantity} for sku, quantity in reserved])
        session.execute(update(_lines).where(_lines.c.order_id == order_id, _lines.c.fulfilment == RESERVED)
                        .values(fulfilment=RELEASED))
    move_status(session, order_id=order_id, from_statuses=[RESERVED], to=CANCELLED,
                event_type=ORDER_CANCELLED, columns={"refund_id": refund_id, "refunded_at": utcnow()},
                reason=reason, refund_id=refund_id)
    return CANCELLED


_orders, _lines = cast(Table, Order.__table__), cast(Table, OrderLine.__table__)
_products = cast(Table, Product.__table__)
_GIVE_BACK = (update(_products).where(_products.c.sku == bindparam("wanted_sku"))
              .values(stock=_products.c.stock + bindparam("quantity")))
