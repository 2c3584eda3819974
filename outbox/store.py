"""Writing, reading and marking outbox rows, for the use cases, the relay and the fast path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Table, func, insert, select, text, update
from sqlalchemy.orm import Session

from outbox import tracing
from outbox.clock import new_id, utcnow
from outbox.models import OutboxEvent

# The channel the relay LISTENs on (outbox/wakeup.py).
RELAY_CHANNEL = "orderflow_outbox"


def notify_relay(session: Session) -> None:
    """Wake the relays once this transaction commits (PostgreSQL NOTIFY; no-op on SQLite).

    NOTIFY is transactional: a rolled-back transaction wakes nobody, and several in one
    transaction are folded into one. The relay's poll stays the safety net.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {RELAY_CHANNEL}"))


def add_event(session: Session, *, event_type: str, aggregate_id: str, payload: dict[str, Any],
              event_id: str | None = None) -> str:
    """Write an event in the caller's open transaction; returns its id.

    This is how a consumer tells others what its effect did: called from a handler, the
    event commits with the effect and the delivery record (outbox/deliveries.py), or not
    at all. A redelivered message finds its record final and never runs the handler
    again, so the follow-up event is written exactly once; the relay publishes it like
    any other (NOTIFY on PostgreSQL, its poll everywhere).
    """
    event_id = event_id or new_id()
    session.execute(insert(cast(Table, OutboxEvent.__table__)).values(
        id=event_id, event_type=event_type, aggregate_id=aggregate_id, payload=payload,
        created_at=utcnow(), published_at=None, publish_attempts=0,
        trace_context=tracing.traceparent_of(),  # the delivery's span, when tracing is on
    ))
    notify_relay(session)
    return event_id


def relay_notification() -> ColumnElement[Any]:
    """`pg_notify(channel, '')`: the NOTIFY of `notify_relay` as an expression, to fold it into a
    statement that writes the outbox row (PostgreSQL only); same transactional semantics."""
    return func.pg_notify(RELAY_CHANNEL, "")


def claim_unpublished(session: Session, *, older_than_seconds: float, limit: int) -> Sequence[OutboxEvent]:
    """Lock a batch of unpublished events for this transaction.

    On PostgreSQL `FOR UPDATE SKIP LOCKED` lets several relays run at once, each
    taking different rows; SQLite ignores it (it has one writer at a time anyway).
    """
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None), OutboxEvent.created_at <= cutoff)
        .order_by(OutboxEvent.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def mark_published(session: Session, event_ids: Sequence[str]) -> int:
    if not event_ids:
        return 0
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(OutboxEvent)
        .where(OutboxEvent.id.in_(event_ids), OutboxEvent.published_at.is_(None))
        .values(published_at=utcnow(), publish_attempts=OutboxEvent.publish_attempts + 1)
    )
    return result.rowcount
