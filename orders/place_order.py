"""The use case: charge by direct call, then store the order and its event in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from orders.db import SessionFactory
from orders.errors import InvalidOrder, UnknownProduct
from orders.events import order_created_payload
from orders.models import Order, OrderLine, OutboxEvent, Product, new_id
from orders.outbox import notify_relay
from orders.payments import PaymentGateway
from orders.schemas import PlaceOrderIn, parse_place_order
from orders.subscriptions import ORDER_CREATED

log = logging.getLogger(__name__)

AfterCommit = Callable[[OutboxEvent], None]


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    event_id: str
    total_cents: int
    currency: str
    payment_id: str


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
    prices = _load_prices(session_factory, command)
    total = sum(prices[line.sku].price_cents * line.quantity for line in command.lines)
    order_id = new_id()
    charge = gateway.charge(
        amount_cents=total, currency=currency, card_token=command.card_token,
        idempotency_key=order_id,
    )
    try:
        event = _store(session_factory, command, prices, order_id, charge.payment_id, currency)
    except Exception:
        # Paid but not stored: give the money back, then let the caller see the error.
        log.exception("storing order %s failed after payment; refunding", order_id)
        gateway.refund(payment_id=charge.payment_id)
        raise
    if after_commit is not None:
        _run_after_commit(after_commit, event)
    return PlacedOrder(order_id, event.id, total, currency, charge.payment_id)


def _load_prices(session_factory: SessionFactory, command: PlaceOrderIn) -> dict[str, Product]:
    skus = [line.sku for line in command.lines]
    if len(set(skus)) != len(skus):
        raise InvalidOrder(
            "each product may appear once per order",
            details=[{"field": "lines", "message": "duplicate sku"}],
        )
    with session_factory() as session:
        products = session.scalars(select(Product).where(Product.sku.in_(skus))).all()
    found = {p.sku: p for p in products}
    missing = [sku for sku in skus if sku not in found]
    if missing:
        raise UnknownProduct(
            f"unknown product: {', '.join(missing)}",
            details=[{"field": "lines.sku", "message": f"unknown product {sku!r}"} for sku in missing],
        )
    return found


def _store(
    session_factory: SessionFactory,
    command: PlaceOrderIn,
    prices: dict[str, Product],
    order_id: str,
    payment_id: str,
    currency: str,
) -> OutboxEvent:
    order = Order(
        id=order_id,
        customer_email=command.customer_email,
        customer_name=command.customer_name,
        total_cents=sum(prices[ln.sku].price_cents * ln.quantity for ln in command.lines),
        currency=currency,
        payment_id=payment_id,
        lines=[
            OrderLine(sku=ln.sku, quantity=ln.quantity, unit_price_cents=prices[ln.sku].price_cents)
            for ln in command.lines
        ],
    )
    event_id = new_id()
    event = OutboxEvent(
        id=event_id,
        event_type=ORDER_CREATED,
        aggregate_id=order_id,
        payload=order_created_payload(event_id, order, prices),
    )
    # One transaction: the order exists if and only if its event does.
    with session_factory.begin() as session:
        session.add(order)
        session.add(event)
        notify_relay(session)
    return event


def _run_after_commit(after_commit: AfterCommit, event: OutboxEvent) -> None:
    try:
        after_commit(event)
    except Exception:  # the order is committed; the relay publishes the event anyway
        log.exception("after-commit publish of event %s failed; the relay will take it", event.id)
