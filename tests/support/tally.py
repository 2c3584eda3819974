"""What a test system did, counted from the database and the SMTP sink: the figures a report needs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from email import message_from_bytes

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orders.models import Order, RevenueEntry
from outbox.db import SessionFactory
from outbox.models import Delivery, OutboxEvent


@dataclass(frozen=True)
class Tally:
    orders: int
    events: int
    unpublished: int
    deliveries: dict[str, int]  # state -> count
    revenue_rows: int
    emails: int
    duplicate_emails: int  # copies beyond the first, per event

    @property
    def succeeded(self) -> int:
        return self.deliveries.get("succeeded", 0)

    @property
    def dead(self) -> int:
        return self.deliveries.get("dead", 0)


def emails_per_event(messages: Iterable[bytes]) -> Counter[str]:
    return Counter(str(message_from_bytes(raw)["X-Orderflow-Event"]) for raw in messages)


def tally(session_factory: SessionFactory, messages: Iterable[bytes]) -> Tally:
    per_event = emails_per_event(messages)
    with session_factory() as session:
        def count(model: type, *where: object) -> int:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]

        states = _states(session)
        return Tally(
            orders=count(Order),
            events=count(OutboxEvent),
            unpublished=count(OutboxEvent, OutboxEvent.published_at.is_(None)),
            deliveries=states,
            revenue_rows=count(RevenueEntry),
            emails=sum(per_event.values()),
            duplicate_emails=sum(n - 1 for n in per_event.values()),
        )


def settled(session_factory: SessionFactory, expected: int) -> dict[str, int] | None:
    """Delivery states once `expected` deliveries are final, else None (for wait_until)."""
    with session_factory() as session:
        states = _states(session)
    final = states.get("succeeded", 0) + states.get("dead", 0)
    return states if final >= expected else None


def _states(session: Session) -> dict[str, int]:
    rows = session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
    return {state: count for state, count in rows}
