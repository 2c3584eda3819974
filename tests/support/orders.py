"""Small helpers to place orders and read their outcome straight from the database."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from orders.models import Product, RevenueEntry
from orders.payments import CARD_OK, SimulatedGateway
from orders.place_order import AfterCommit, PlacedOrder, place_order
from outbox.db import SessionFactory
from outbox.models import Delivery, OutboxEvent


def order_input(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "customer_email": f"buyer-{uuid.uuid4().hex[:8]}@example.com",
        "customer_name": "Ada Lovelace",
        "card_token": CARD_OK,
        "lines": [{"sku": "mug", "quantity": 2}],
        "shipping_address": address(),
    }
    data.update(overrides)
    return data


def address(**overrides: str) -> dict[str, str]:
    """A shipping address the simulated carrier serves (postcode 00000: rejected, 99999: unreachable)."""
    return {"line1": "12 Crescent Road", "city": "London", "postcode": "N8 8AA", "country": "GB",
            **overrides}


def place(session_factory: SessionFactory, *, after_commit: AfterCommit | None = None,
          **overrides: Any) -> PlacedOrder:
    return place_order(
        session_factory=session_factory, gateway=SimulatedGateway(), data=order_input(**overrides),
        after_commit=after_commit,
    )


def deliveries_of(session_factory: SessionFactory, event_id: str) -> dict[str, Delivery]:
    with session_factory() as session:
        rows = session.scalars(select(Delivery).where(Delivery.event_id == event_id)).all()
    return {row.consumer: row for row in rows}


def states(session_factory: SessionFactory, event_id: str) -> dict[str, str]:
    return {c: d.state for c, d in deliveries_of(session_factory, event_id).items()}


def all_final(session_factory: SessionFactory, event_id: str, consumers: int = 3) -> dict[str, str] | None:
    current = states(session_factory, event_id)
    done = len(current) == consumers and all(s in ("succeeded", "dead") for s in current.values())
    return current if done else None


def stock(session_factory: SessionFactory, sku: str) -> int:
    with session_factory() as session:
        return session.get(Product, sku).stock  # type: ignore[union-attr]


def revenue_rows(session_factory: SessionFactory, event_id: str) -> int:
    with session_factory() as session:
        return session.scalar(
            select(func.count()).select_from(RevenueEntry).where(RevenueEntry.event_id == event_id)
        ) or 0


def outbox_event(session_factory: SessionFactory, event_id: str) -> OutboxEvent | None:
    with session_factory() as session:
        return session.get(OutboxEvent, event_id)
