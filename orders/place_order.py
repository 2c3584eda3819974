"""The use case: charge by direct call, then store the order and its event in one transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from orders.errors import InvalidOrder, UnknownProduct
from orders.models import ADDRESS_FIELDS, PLACED, Order, OrderLine, Product
from orders.order_store import store_order
from orders.payloads import order_created_payload
from orders.payments import PaymentGateway
from orders.schemas import PlaceOrderIn, parse_place_order
from orders.subscriptions import ORDER_CREATED
from outbox import tracing
from outbox.after_commit import AfterCommit, run_after_commit
from outbox.clock import new_id, utcnow
from outbox.db import SessionFactory
from outbox.models import OutboxEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlacedLine:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class PlacedOrder:
    """What was committed, so a caller can answer without reading the order back."""

    order_id: str
    event_id: str
    total_cents: int
    currency: str
    payment_id: str
    customer_email: str
    customer_name: str
    created_at: datetime
    lines: tuple[PlacedLine, ...]
    status: str
    shipping_address: dict[str, str] | None


def place_order(
    *,
    session_factory: SessionFactory,
    gateway: PaymentGateway,
    data: object,
    currency: str = "EUR",
    after_commit: AfterCommit | None = None,
) -> PlacedOrder:
    """Place an order or raise an OrderflowError; on any error nothing is written.

    `after_commit` receives the committed event (the fast publishing path); it
    must not block, and whatever it does, the relay publishes what it missed.
    """
    command = parse_place_order(data)
    prices = load_prices(session_factory, command)
    total = sum(prices[line.sku].price_cents * line.quantity for line in command.lines)
    order_id = new_id()
    charge = gateway.charge(
        amount_cents=total, currency=currency, card_token=command.card_token,
        idempotency_key=order_id,
    )
    order = new_order(order_id, command, prices, total=total, currency=currency, payment_id=charge.payment_id)
    event_id = new_id()
    event = OutboxEvent(
        id=event_id,
        event_type=ORDER_CREATED,
        aggregate_id=order.id,
        payload=order_created_payload(event_id, order, prices),
        created_at=order.created_at,
        trace_context=tracing.traceparent_of(),  # None unless tracing is on
    )
    try:
        store_order(session_factory, order, event)  # one transaction: the order iff its event
    except Exception:
        # Paid but not stored: give the money back, then let the caller see the error.
        log.exception("storing order %s failed after payment; refunding", order_id)
        gateway.refund(payment_id=charge.payment_id)
        raise
    run_after_commit(after_commit, event)
    return placed_from(order, event.id)


def new_order(order_id: str, command: PlaceOrderIn, prices: dict[str, Product], *, total: int,
              currency: str, payment_id: str) -> Order:
    """The order as placing it writes it: status `placed`, with its lines and address."""
    address = command.shipping_address
    return Order(
        id=order_id,
        customer_email=command.customer_email,
        customer_name=command.customer_name,
        total_cents=total,
        currency=currency,
        payment_id=payment_id,
        created_at=utcnow(),
        status=PLACED,
        **{f"ship_{name}": getattr(address, name) for name in ADDRESS_FIELDS},
        lines=[
            OrderLine(sku=ln.sku, quantity=ln.quantity, unit_price_cents=prices[ln.sku].price_cents)
            for ln in command.lines
        ],
    )


def load_prices(session_factory: SessionFactory, command: PlaceOrderIn) -> dict[str, Product]:
    skus = [line.sku for line in command.lines]
    if len(set(skus)) != len(skus):
        raise InvalidOrder(
            "each product may appear once per order",
            details=[{"field": "lines", "message": "duplicate sku"}],
        )
    with session_factory() as session:
        # One read needs no transaction: autocommit spares the BEGIN and ROLLBACK round trips.
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        products = session.scalars(select(Product).where(Product.sku.in_(skus))).all()
    found = {p.sku: p for p in products}
    missing = [sku for sku in skus if sku not in found]
    if missing:
        raise UnknownProduct(
            f"unknown product: {', '.join(missing)}",
            details=[{"field": "lines.sku", "message": f"unknown product {sku!r}"} for sku in missing],
        )
    return found


def placed_from(order: Order, event_id: str) -> PlacedOrder:
    """What `place_order` answers, from the order it built."""
    return PlacedOrder(
        order.id, event_id, order.total_cents, order.currency, order.payment_id,
        order.customer_email, order.customer_name, order.created_at,
        tuple(PlacedLine(ln.sku, ln.quantity, ln.unit_price_cents) for ln in order.lines),
        order.status, order.shipping_address,
    )
