"""Analytics: record the order's revenue (fire-and-forget: its failure never touches the others)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from orders.consumers.payload import reading_payload
from orders.models import RevenueEntry


def record_revenue(session: Session, event_id: str, payload: dict[str, Any]) -> None:
    with reading_payload("order.created"):
        entry = RevenueEntry(event_id=event_id, order_id=str(payload["order_id"]),
                             amount_cents=int(payload["total_cents"]), currency=str(payload["currency"]))
    session.add(entry)
