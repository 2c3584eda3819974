"""Read models for the API: orders with their per-consumer delivery status, products."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from orders.errors import OrderNotFound
from orders.models import Order, Product
from orders.subscriptions import ORDER_CREATED
from outbox.clock import iso
from outbox.db import SessionFactory
from outbox.models import Delivery, OutboxEvent
from outbox.states import PENDING
from outbox.subscriptions import subscribers_of


def get_order(session_factory: SessionFactory, order_id: str, *,
              others: Sequence[SessionFactory] = ()) -> dict[str, Any]:
    """The order with its timeline: its events in every service's database (`others`: the
    shipping one, when it has its own), each with its deliveries wherever they are recorded."""
    with session_factory() as session:
        order = session.scalars(
            select(Order).options(selectinload(Order.lines)).where(Order.id == order_id)
        ).one_or_none()
        if order is None:
            raise OrderNotFound(f"no order with id {order_id!r}")
        events = events_of(session, [order_id], others=others)[order_id]
    return {
        **order_summary(order),
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_cents": line.unit_price_cents,
                "fulfilment": line.fulfilment,
            }
            for line in order.lines
        ],
        "events": events,
    }


def recent_orders(session_factory: SessionFactory, *, limit: int = 20,
                  others: Sequence[SessionFactory] = ()) -> list[dict[str, Any]]:
    """The newest orders with their events' per-consumer delivery status (the operator page);
    `others`: as for `get_order`."""
    with session_factory() as session:
        orders = session.scalars(select(Order).order_by(Order.created_at.desc()).limit(limit)).all()
        events = events_of(session, [order.id for order in orders], others=others)
    return [{**order_summary(order), "events": events[order.id]} for order in orders]


def events_of(session: Session, order_ids: list[str], *,
              others: Sequence[SessionFactory] = ()) -> dict[str, list[dict[str, Any]]]:
    """Per order: its events, each with one delivery status per subscribed consumer.

    With `others` (the other services' databases) the events they wrote about these orders
    join the timeline, and each delivery is read from whichever database records it."""
    events_query = select(OutboxEvent).where(OutboxEvent.aggregate_id.in_(order_ids))
    events = list(session.scalars(events_query))
    for other in others:
        with other() as other_session:
            events += other_session.scalars(events_query)
    events.sort(key=lambda event: event.created_at)
    deliveries_query = select(Delivery).where(Delivery.event_id.in_([e.id for e in events]))
    deliveries = {(d.event_id, d.consumer): d for d in session.scalars(deliveries_query)}
    for other in others:
        with other() as other_session:
            deliveries.update({(d.event_id, d.consumer): d for d in other_session.scalars(deliveries_query)})
    by_order: dict[str, list[dict[str, Any]]] = {order_id: [] for order_id in order_ids}
    for event in events:
        by_order[event.aggregate_id].append({
            "event_id": event.id,
            "type": event.event_type,
            "published": event.published_at is not None,
            "deliveries": {
                sub.consumer: delivery_status(deliveries.get((event.id, sub.consumer)))
                for sub in subscribers_of(event.event_type)
            },
        })
    for found in by_order.values():
        if not found:
            # An order exists only with its order.created event (same transaction), so an
            # order without one had it pruned (outbox/retention.py): which happens only once
            # every delivery was final and resolved, longer ago than the retention.
            found.append(pruned_event(ORDER_CREATED))
    return by_order


def pruned_event(event_type: str) -> dict[str, Any]:
    return {
        "event_id": None,
        "type": event_type,
        "published": True,
        "pruned": True,
        "deliveries": {
            sub.consumer: {"state": "completed", "pruned": True, "attempts": None, "last_error": None}
            for sub in subscribers_of(event_type)
        },
    }


def order_summary(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer_email": order.customer_email,
        "customer_name": order.customer_name,
        "total_cents": order.total_cents,
        "currency": order.currency,
        "payment_id": order.payment_id,
        "created_at": iso(order.created_at),
        "status": order.status,
        "shipping_address": order.shipping_address,
        "tracking_number": order.tracking_number,
        "refund": ({"id": order.refund_id, "amount_cents": order.total_cents,
                    "refunded_at": iso(order.refunded_at) if order.refunded_at else None}
                   if order.refund_id else None),
    }


def delivery_status(delivery: Delivery | None) -> dict[str, Any]:
    """No record yet means the message has not been picked up: pending."""
    if delivery is None:
        return {"state": PENDING, "attempts": 0, "last_error": None}
    return {
        "id": delivery.id,  # the delivery id operators use (orderflow dead-letters show <id>)
        "state": delivery.state,
        "attempts": delivery.attempts,
        "queue": delivery.queue,
        "last_error": delivery.last_error,
        "updated_at": iso(delivery.updated_at),
    }


def list_products(session_factory: SessionFactory) -> list[dict[str, Any]]:
    with session_factory() as session:
        products = session.scalars(select(Product).order_by(Product.sku)).all()
    return [
        {"sku": p.sku, "name": p.name, "price_cents": p.price_cents, "stock": p.stock}
        for p in products
    ]


def delivery_statuses(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An order's durable deliveries as flat status messages (the live stream's shape,
    `outbox.status_feed.status_message`); in-process subscribers keep no record."""
    return [
        {"event_id": event["event_id"], "consumer": consumer, "state": d["state"],
         "attempts": d["attempts"], "last_error": d["last_error"]}
        for event in events if not event.get("pruned")  # its records are gone: nothing live to watch
        for consumer, d in event["deliveries"].items()
    ]


def statuses_of_orders(session_factory: SessionFactory, order_ids: list[str], *,
                       others: Sequence[SessionFactory] = ()) -> dict[str, list[dict[str, Any]]]:
    """Per order found: its delivery statuses, for many orders in three queries (two more per
    database in `others`: the shipping one, when it has its own) (the stream
    server's reads); an unknown order is absent from the answer."""
    with session_factory() as session:
        found = list(session.scalars(select(Order.id).where(Order.id.in_(order_ids))))
        events = events_of(session, found, others=others)
    return {order_id: delivery_statuses(events[order_id]) for order_id in found}
