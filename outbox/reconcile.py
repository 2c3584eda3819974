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

from collections.abc import Callable, Sequence
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
    session_factory: SessionFactory, *, after_seconds: float, horizon_seconds: float, limit: int,
    records_of: Callable[[Subscriber], SessionFactory] | None = None,
) -> list[Overdue]:
    """Overdue (event, consumer) pairs of this database's events, oldest first; events older
    than the horizon are left alone.

    `records_of` says where a subscriber keeps its delivery records (default: here). Another
    service's consumer records them in its own database: there its records are read for the
    events found here, and matched in Python (one query per database, no join across them).
    """
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
                published = (OutboxEvent.event_type == event_type, OutboxEvent.published_at.is_not(None),
                             OutboxEvent.published_at < cutoff, OutboxEvent.published_at >= since)
                elsewhere = records_of(subscriber) if records_of is not None else session_factory
                if elsewhere is session_factory:
                    found += _overdue_here(session, subscriber, published, cutoff, now, limit - len(found))
                else:
                    found += _overdue_elsewhere(session, elsewhere, subscriber, published, cutoff, now,
                                                limit - len(found))
    return found


def _overdue_here(session: Any, subscriber: Subscriber, published: tuple[Any, ...], cutoff: Any,
                  now: Any, limit: int) -> list[Overdue]:
    delivery = aliased(Delivery)
    rows = session.execute(
        select(OutboxEvent.id, OutboxEvent.payload, delivery.state)
        .outerjoin(delivery, and_(delivery.event_id == OutboxEvent.id,
                                  delivery.consumer == subscriber.consumer))
        .where(*published, or_(delivery.id.is_(None), _stuck(delivery, cutoff, now)))
        .order_by(OutboxEvent.published_at)
        .limit(limit)
    ).all()
    return [Overdue(r.id, r.payload, subscriber, r.state or MISSING) for r in rows]


# Events of one type read per pass when their consumer's records are in another database
# (each is then looked up there): enough for a pass, bounded like the relay's batches.
ELSEWHERE_SCAN = 2000


def _overdue_elsewhere(session: Any, records: SessionFactory, subscriber: Subscriber,
                       published: tuple[Any, ...], cutoff: Any, now: Any, limit: int) -> list[Overdue]:
    events = session.execute(select(OutboxEvent.id, OutboxEvent.payload).where(*published)
                             .order_by(OutboxEvent.published_at).limit(ELSEWHERE_SCAN)).all()
    if not events:
        return []
    with records() as there:
        known = {d.event_id: d for d in there.scalars(select(Delivery).where(
            Delivery.consumer == subscriber.consumer, Delivery.event_id.in_([e.id for e in events])))}
    found = []
    for event in events:
        record = known.get(event.id)
        if record is None:
            found.append(Overdue(event.id, event.payload, subscriber, MISSING))
        elif (record.state not in FINAL_STATES and record.updated_at < cutoff
              and (record.state != RUNNING or record.lease_until is None or record.lease_until < now)):
            found.append(Overdue(event.id, event.payload, subscriber, record.state))
        if len(found) >= limit:
            break
    return found


def _stuck(delivery: Any, cutoff: Any, now: Any) -> Any:
    lease_gone = or_(delivery.state != RUNNING, delivery.lease_until.is_(None),
                     delivery.lease_until < now)
    return and_(delivery.state.not_in(FINAL_STATES), delivery.updated_at < cutoff, lease_gone)


def mark_republished(session_factory: SessionFactory, overdue: Sequence[Overdue], *,
                     after_seconds: float,
                     records_of: Callable[[Subscriber], SessionFactory] | None = None) -> None:
    """Stamp what was republished, where each consumer keeps its records (`records_of`, default
    `session_factory`): a missing record becomes `pending`, a stuck one is touched.

    Each write only applies if nobody moved the delivery meanwhile (a worker
    that took it in between wins).
    """
    by_database: dict[int, tuple[SessionFactory, list[Overdue]]] = {}
    for item in overdue:
        database = records_of(item.subscriber) if records_of is not None else session_factory
        by_database.setdefault(id(database), (database, []))[1].append(item)
    for database, items in by_database.values():
        _stamp(database, items, after_seconds=after_seconds)


def _stamp(session_factory: SessionFactory, overdue: Sequence[Overdue], *, after_seconds: float) -> None:
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
