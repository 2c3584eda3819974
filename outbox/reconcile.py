"""Finding deliveries that should have happened by now, for the reconciler.

A published message can vanish without a trace: Redis restarted without
persistence, or a worker host died holding it (Redis hands it out again only
after the visibility timeout, an hour by default). The outbox says the event
was published; the delivery record says whether each subscriber got it. An
(event, consumer) pair is *overdue* when its event was published more than
`after_seconds` ago and its delivery is

- missing (no worker ever took the message), or
- not final and unchanged for `after_seconds`: pending, retrying (a retry waits
  at most its policy's backoff cap, which the deadline must exceed), or running
  with an expired lease (the worker that held it is gone).

`mark_republished` stamps the pairs it was given, so that a pass leaves them
alone for another `after_seconds`: a republished message that is lost again is
sent again, one that is merely slow is not sent over and over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import aliased

from outbox.clock import utcnow
from outbox.db import SessionFactory, insert_for
from outbox.models import Delivery, OutboxEvent
from outbox.states import FINAL_STATES, PENDING, RUNNING
from outbox.subscriptions import Subscriber, registry

MISSING = "missing"


@dataclass(frozen=True)
class Overdue:
    event_id: str
    payload: Any
    subscriber: Subscriber
    state: str  # MISSING, or the state of the delivery record


def find_overdue(
    session_factory: SessionFactory, *, after_seconds: float, horizon_seconds: float, limit: int
) -> list[Overdue]:
    """Overdue (event, consumer) pairs, oldest first; events older than the horizon are left alone."""
    now = utcnow()
    cutoff = now - timedelta(seconds=after_seconds)
    since = now - timedelta(seconds=horizon_seconds)
    found: list[Overdue] = []
    with session_factory() as session:
        for event_type in registry.event_types():
            # Durable subscribers only: in-process ones keep no record and have no queue.
            for subscriber in registry.subscribers_of(event_type):
                if len(found) >= limit:
                    return found
                delivery = aliased(Delivery)
                rows = session.execute(
                    select(OutboxEvent.id, OutboxEvent.payload, delivery.state)
                    .outerjoin(delivery, and_(delivery.event_id == OutboxEvent.id,
                                              delivery.consumer == subscriber.consumer))
                    .where(
                        OutboxEvent.event_type == event_type,
                        OutboxEvent.published_at.is_not(None),
                        OutboxEvent.published_at < cutoff,
                        OutboxEvent.published_at >= since,
                        or_(delivery.id.is_(None), _stuck(delivery, cutoff, now)),
                    )
                    .order_by(OutboxEvent.published_at)
                    .limit(limit - len(found))
                ).all()
                found += [Overdue(r.id, r.payload, subscriber, r.state or MISSING) for r in rows]
    return found


def _stuck(delivery: Any, cutoff: Any, now: Any) -> Any:
    lease_gone = or_(delivery.state != RUNNING, delivery.lease_until.is_(None),
                     delivery.lease_until < now)
    return and_(delivery.state.not_in(FINAL_STATES), delivery.updated_at < cutoff, lease_gone)


def mark_republished(session_factory: SessionFactory, overdue: Sequence[Overdue], *,
                     after_seconds: float) -> None:
    """Stamp what was republished: a missing record becomes `pending`, a stuck one is touched.

    Each write only applies if nobody moved the delivery meanwhile (a worker
    that took it in between wins).
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=after_seconds)
    with session_factory.begin() as session:
        for item in overdue:
            consumer = item.subscriber.consumer
            if item.state == MISSING:
                session.execute(
                    insert_for(session, Delivery)
                    .values(event_id=item.event_id, consumer=consumer, state=PENDING, attempts=0,
                            queue=item.subscriber.queue, created_at=now, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["event_id", "consumer"])
                )
            else:
                session.execute(
                    update(Delivery)
                    .where(Delivery.event_id == item.event_id, Delivery.consumer == consumer,
                           Delivery.state.not_in(FINAL_STATES), Delivery.updated_at < cutoff)
                    .values(updated_at=now)
                )
