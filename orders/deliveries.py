"""Delivery records: one row per (event, consumer), the idempotency key of every effect.

A consumer task calls `begin` before its handler (one round trip: an upsert that
also takes a short lease), then exactly one of `succeed_within` (inside the
handler's own transaction, so effect and record commit together),
`mark_retrying`, or `mark_dead`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import cast

from sqlalchemy import CursorResult, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from orders.db import SessionFactory
from orders.models import Delivery, DeliveryError, utcnow

PENDING, RUNNING, RETRYING, SUCCEEDED, DEAD = "pending", "running", "retrying", "succeeded", "dead"
# An operator set a dead letter aside for good (orders/dead_letter_actions.py): final too.
DISCARDED = "discarded"
FINAL_STATES = (SUCCEEDED, DEAD, DISCARDED)

MAX_ERROR_CHARS = 2000
MAX_TRACEBACK_CHARS = 20000


class Start(Enum):
    RUN = "run"  # this worker runs the delivery now
    DONE = "done"  # succeeded or dead already: a redelivery, acknowledge and forget
    BUSY = "busy"  # another worker holds the lease: look again after it expires


@dataclass(frozen=True)
class Begun:
    start: Start
    attempts: int = 0
    retry_in: float = 0.0


def begin(
    session_factory: SessionFactory,
    *,
    event_id: str,
    consumer: str,
    queue: str | None,
    lease_seconds: float,
) -> Begun:
    """Count an attempt and take the lease, unless the delivery is final or leased."""
    now = utcnow()
    lease_until = now + timedelta(seconds=lease_seconds)
    # One statement, atomic on its own: run it in autocommit mode, so the database sees one
    # round trip instead of three (BEGIN, the upsert, COMMIT). The follow-up SELECT (rare:
    # final or leased elsewhere) only reports what the upsert refused; it needs no transaction.
    with session_factory() as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        table = Delivery.__table__
        insert = _insert_for(session).values(
            event_id=event_id,
            consumer=consumer,
            state=RUNNING,
            attempts=1,
            queue=queue,
            lease_until=lease_until,
            created_at=now,
            updated_at=now,
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[table.c.event_id, table.c.consumer],
            set_={
                "state": RUNNING,
                "attempts": table.c.attempts + 1,
                "queue": queue,
                "lease_until": lease_until,
                "updated_at": now,
            },
            where=table.c.state.not_in(FINAL_STATES)
            & ((table.c.state != RUNNING) | (table.c.lease_until < now)),
        ).returning(table.c.attempts)
        attempts = session.execute(upsert).scalar_one_or_none()
        if attempts is not None:
            return Begun(Start.RUN, attempts=attempts)
        row = session.execute(
            select(Delivery.state, Delivery.lease_until).where(
                Delivery.event_id == event_id, Delivery.consumer == consumer
            )
        ).one()
    if row.state in FINAL_STATES:
        return Begun(Start.DONE)
    return Begun(Start.BUSY, retry_in=max(0.1, _seconds_until(row.lease_until, now)))


def succeed_within(session: Session, *, event_id: str, consumer: str) -> bool:
    """Mark succeeded in the caller's transaction; False if another worker already did.

    The caller must roll back its effect when this returns False: that is what
    makes a concurrent duplicate harmless.
    """
    table = cast(Table, Delivery.__table__)
    # A Core UPDATE on the table, not the ORM-enabled `update(Delivery)`: no ORM object is
    # involved, and the ORM's bulk-update bookkeeping cost more CPU than the statement itself.
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(table)
        .where(
            table.c.event_id == event_id,
            table.c.consumer == consumer,
            table.c.state.not_in(FINAL_STATES),
        )
        .values(state=SUCCEEDED, lease_until=None, updated_at=utcnow())
    )
    return result.rowcount == 1


class AlreadyDelivered(Exception):
    """Raised inside `deliver` to roll back an effect someone else already committed."""


def deliver(
    session_factory: SessionFactory,
    *,
    event_id: str,
    consumer: str,
    effect: Callable[[Session], object],
) -> bool:
    """Run `effect` and record success in one transaction. False: it was a duplicate."""
    try:
        with session_factory.begin() as session:
            effect(session)
            if not succeed_within(session, event_id=event_id, consumer=consumer):
                raise AlreadyDelivered(event_id)
    except AlreadyDelivered:
        return False
    return True


def mark_retrying(
    session_factory: SessionFactory, *, event_id: str, consumer: str, error: str
) -> None:
    _set_state(session_factory, event_id, consumer, state=RETRYING, error=error)


def mark_dead(
    session_factory: SessionFactory,
    *,
    event_id: str,
    consumer: str,
    error: str,
    traceback: str | None,
) -> None:
    _set_state(
        session_factory, event_id, consumer, state=DEAD, error=error, traceback=traceback
    )


def _set_state(
    session_factory: SessionFactory,
    event_id: str,
    consumer: str,
    *,
    state: str,
    error: str,
    traceback: str | None = None,
) -> None:
    values: dict[str, object] = {
        "state": state,
        "last_error": error[:MAX_ERROR_CHARS],
        "lease_until": None,
        "updated_at": utcnow(),
    }
    if traceback is not None:
        values["traceback"] = traceback[-MAX_TRACEBACK_CHARS:]
    with session_factory.begin() as session:
        attempt = session.execute(
            update(Delivery)
            .where(
                Delivery.event_id == event_id,
                Delivery.consumer == consumer,
                Delivery.state != SUCCEEDED,
            )
            .values(**values)
            .returning(Delivery.attempts)
        ).scalar_one_or_none()
        if attempt is not None:  # every failed attempt stays visible, not just the last one
            session.add(DeliveryError(event_id=event_id, consumer=consumer, attempt=attempt,
                                      outcome=state, error=error[:MAX_ERROR_CHARS]))


def _insert_for(session: Session) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT exists on both databases, spelled by each dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(Delivery)
    return sqlite.insert(Delivery)


def _seconds_until(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:  # SQLite hands back naive datetimes (stored as UTC)
        moment = moment.replace(tzinfo=now.tzinfo)
    return (moment - now).total_seconds()
