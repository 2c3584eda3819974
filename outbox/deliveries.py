"""Delivery records: one row per (event, consumer), the idempotency key of every effect.

A consumer task calls `begin` before its handler (one round trip: an upsert that
also takes a short lease), then exactly one of `succeed_within` (inside the
handler's own transaction, so effect and record commit together),
`mark_retrying`, or `mark_dead`.

A message that carries several deliveries (a batch, see tasks/delivery_task.py) does
the same for all of them at once: `begin_many` is one upsert for the whole
batch, `deliver_many` runs every effect in one transaction (a failing one rolled back alone)
and marks every success with one UPDATE, and `release` hands back the leases
of deliveries it did not get to, without counting an attempt.
"""

from __future__ import annotations

import traceback as traceback_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import cast

from sqlalchemy import CursorResult, Table, and_, select, update
from sqlalchemy.orm import Session

from outbox.clock import utcnow
from outbox.db import SessionFactory, insert_for
from outbox.models import Delivery, DeliveryError
from outbox.states import DEAD, FINAL_STATES, HELD, PENDING, RETRYING, RUNNING, SUCCEEDED
from outbox.subscriptions import Handler

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
    delivery_id: int | None = None  # the record's id (when begun to run)


def begin(
    session_factory: SessionFactory,
    *,
    event_id: str,
    consumer: str,
    queue: str | None,
    lease_seconds: float,
    task_id: str | None = None,
) -> Begun:
    """Count an attempt and take the lease, unless the delivery is final or leased."""
    return begin_many(session_factory, event_ids=[event_id], consumer=consumer, queue=queue,
                      lease_seconds=lease_seconds, task_id=task_id)[event_id]


def begin_many(
    session_factory: SessionFactory,
    *,
    event_ids: Sequence[str],
    consumer: str,
    queue: str | None,
    lease_seconds: float,
    task_id: str | None = None,
) -> dict[str, Begun]:
    """`begin` for many events of one consumer in one statement; event id -> Begun."""
    if not event_ids:
        return {}
    now = utcnow()
    lease_until = now + timedelta(seconds=lease_seconds)
    # One statement, atomic on its own: run it in autocommit mode, so the database sees one
    # round trip instead of three (BEGIN, the upsert, COMMIT). The follow-up SELECT (rare:
    # final or leased elsewhere) only reports what the upsert refused; it needs no transaction.
    with session_factory() as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        table = Delivery.__table__
        rows = [
            {"event_id": event_id, "consumer": consumer, "state": RUNNING, "attempts": 1, "queue": queue,
             "lease_until": lease_until, "task_id": task_id, "created_at": now, "updated_at": now}
            for event_id in event_ids
        ]
        # Every value comes from the rows (`excluded` is the row that was refused by the
        # conflict), so the statement is compiled once and cached, and SQLAlchemy sends all
        # rows as one multi-row INSERT ("insertmanyvalues"), RETURNING what it began.
        insert = insert_for(session, table)
        upsert = insert.on_conflict_do_update(
            index_elements=[table.c.event_id, table.c.consumer],
            set_={
                "state": RUNNING,
                "attempts": table.c.attempts + 1,
                "queue": insert.excluded.queue,
                "lease_until": insert.excluded.lease_until,
                "task_id": insert.excluded.task_id,
                "updated_at": insert.excluded.updated_at,
            },
            # Spelled with != rather than NOT IN (...): an expanding IN cannot go with executemany.
            where=and_(*(table.c.state != state for state in FINAL_STATES))
            & ((table.c.state != RUNNING) | (table.c.lease_until < insert.excluded.created_at)),
        ).returning(table.c.event_id, table.c.attempts, table.c.id)
        begun = {row.event_id: Begun(Start.RUN, attempts=row.attempts, delivery_id=row.id)
                 for row in session.execute(upsert, rows)}
        refused = [event_id for event_id in event_ids if event_id not in begun]
        if refused:  # rare: final already, or leased by another worker
            for row in session.execute(
                select(Delivery.event_id, Delivery.state, Delivery.lease_until).where(
                    Delivery.event_id.in_(refused), Delivery.consumer == consumer
                )
            ):
                if row.state in FINAL_STATES:
                    begun[row.event_id] = Begun(Start.DONE)
                else:
                    retry_in = max(0.1, _seconds_until(row.lease_until, now))
                    begun[row.event_id] = Begun(Start.BUSY, retry_in=retry_in)
    return begun


def release(session_factory: SessionFactory, *, event_ids: Sequence[str], consumer: str,
            note: str | None = None) -> int:
    """Give back leases taken by `begin_many` for deliveries whose effect never ran.

    The attempt `begin_many` counted is taken back (the delivery was not tried) and
    the state goes back to pending, so the reconciler resends it should the message
    that carries it on be lost. `note` (why it was not run: a payload held for a newer
    consumer) is kept as its last error, so that the wait is visible.
    """
    if not event_ids:
        return 0
    table = cast(Table, Delivery.__table__)
    values: dict[str, object] = {"state": PENDING, "attempts": table.c.attempts - 1, "lease_until": None,
                                 "updated_at": utcnow()}
    if note is not None:
        values["last_error"] = note[:MAX_ERROR_CHARS]
    with session_factory.begin() as session:
        result: CursorResult = session.execute(  # type: ignore[assignment]
            update(table)
            .where(table.c.event_id.in_(event_ids), table.c.consumer == consumer,
                   table.c.state == RUNNING)
            .values(**values)
        )
    return result.rowcount


def hold_many(session_factory: SessionFactory, *, event_ids: Sequence[str], consumer: str,
              queue: str | None) -> None:
    """Mark deliveries `held` (their consumer is paused or its breaker open) without counting
    an attempt. A delivery final already, or running under another worker's lease, is left as it
    is. `updated_at` is touched on every hold: the reconciler leaves a held delivery alone while
    its message keeps coming back, and resends it only if that message is lost.
    """
    if not event_ids:
        return
    now = utcnow()
    with session_factory() as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        table = Delivery.__table__
        insert = insert_for(session, table)
        rows = [{"event_id": event_id, "consumer": consumer, "state": HELD, "attempts": 0, "queue": queue,
                 "created_at": now, "updated_at": now} for event_id in event_ids]
        session.execute(insert.on_conflict_do_update(
            index_elements=[table.c.event_id, table.c.consumer],
            set_={"state": HELD, "lease_until": None, "updated_at": insert.excluded.updated_at},
            where=and_(*(table.c.state != state for state in FINAL_STATES))
            & ((table.c.state != RUNNING) | (table.c.lease_until < insert.excluded.created_at)),
        ), rows)


def hold_after_failure(session_factory: SessionFactory, *, event_id: str, consumer: str, error: str) -> None:
    """A transient failure the breaker blames on the outage (it is open): the attempt `begin`
    counted is given back and the delivery waits, held; the failure stays in its history."""
    with session_factory.begin() as session:
        attempt = session.execute(
            update(Delivery)
            .where(Delivery.event_id == event_id, Delivery.consumer == consumer, Delivery.state == RUNNING)
            .values(state=HELD, attempts=Delivery.attempts - 1, lease_until=None,
                    last_error=error[:MAX_ERROR_CHARS], updated_at=utcnow())
            .returning(Delivery.attempts)
        ).scalar_one_or_none()
        if attempt is not None:
            session.add(DeliveryError(event_id=event_id, consumer=consumer, attempt=attempt + 1,
                                      outcome=HELD, error=error[:MAX_ERROR_CHARS]))


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




@dataclass
class BatchOutcome:
    """What `deliver_many` did, per event id; every event of the batch is in exactly one list."""

    succeeded: list[str] = field(default_factory=list)
    # (event id, exception, formatted traceback), in the order they failed
    failed: list[tuple[str, BaseException, str]] = field(default_factory=list)
    # not tried: the batch stopped early (a transient failure, or its time budget)
    untried: list[str] = field(default_factory=list)
    # another worker recorded some of them first: nothing of this batch was committed
    conflict: bool = False


class _RedoWithSavepoints(Exception):
    """An effect failed in a batch run without savepoints: roll it all back, run it again."""


def deliver_many(
    session_factory: SessionFactory,
    *,
    consumer: str,
    items: Sequence[tuple[str, object]],
    handler: Handler,
    stop_after: Callable[[BaseException], bool],
    out_of_time: Callable[[], bool],
    effects_in_database: bool = True,
) -> BatchOutcome:
    """Run `handler(session, event_id, payload)` for each item in one transaction.

    A failing effect is rolled back alone and reported; the others still commit.
    After a failure for which `stop_after(exc)` is true (a dependency is unwell:
    the next ones would fail the same way), and once `out_of_time()`, the rest
    are left untried. All successes are marked in one UPDATE in the same
    transaction as their effects; if any of them had been recorded by another
    worker meanwhile, the whole transaction rolls back and `conflict` is set
    (the caller falls back to one message per delivery).

    How a failing effect is rolled back alone depends on where it acts:
    `effects_in_database` (inventory, analytics) first runs the whole batch in
    one transaction with no savepoint (two round trips fewer per delivery); if
    any effect fails, everything is rolled back and the batch runs again with a
    savepoint around each effect. Handlers whose effect is outside the database
    (email: `effects_in_database=False`) write nothing in the session, so a
    failure leaves nothing to roll back and they never run twice here.
    """
    if not effects_in_database:
        return _run_all(session_factory, consumer, items, handler, stop_after, out_of_time,
                        mode=_NO_DATABASE_EFFECTS)
    try:
        return _run_all(session_factory, consumer, items, handler, stop_after, out_of_time,
                        mode=_ALL_OR_NOTHING)
    except _RedoWithSavepoints:
        return _run_all(session_factory, consumer, items, handler, stop_after, out_of_time,
                        mode=_SAVEPOINT_EACH)


_ALL_OR_NOTHING, _SAVEPOINT_EACH, _NO_DATABASE_EFFECTS = "all_or_nothing", "savepoint_each", "none"


def _run_all(session_factory: SessionFactory, consumer: str, items: Sequence[tuple[str, object]],
             handler: Handler, stop_after: Callable[[BaseException], bool],
             out_of_time: Callable[[], bool], *, mode: str) -> BatchOutcome:
    outcome = BatchOutcome()
    try:
        with session_factory.begin() as session:
            for index, (event_id, payload) in enumerate(items):
                if out_of_time():
                    outcome.untried = [event_id for event_id, _ in items[index:]]
                    break
                try:
                    if mode == _SAVEPOINT_EACH:
                        with session.begin_nested():
                            handler(session, event_id, payload)
                    else:
                        handler(session, event_id, payload)
                except Exception as exc:
                    if mode == _ALL_OR_NOTHING:
                        raise _RedoWithSavepoints() from exc
                    outcome.failed.append((event_id, exc, traceback_module.format_exc()))
                    if stop_after(exc):
                        outcome.untried = [event_id for event_id, _ in items[index + 1:]]
                        break
                    continue
                outcome.succeeded.append(event_id)
            if mode == _ALL_OR_NOTHING:
                try:
                    session.flush()  # pending ORM inserts fail here, not at commit
                except Exception as exc:
                    raise _RedoWithSavepoints() from exc
            if outcome.succeeded and _succeed_all(session, outcome.succeeded, consumer) != len(
                outcome.succeeded
            ):
                raise AlreadyDelivered(consumer)
    except AlreadyDelivered:
        return BatchOutcome(conflict=True)
    return outcome


def _succeed_all(session: Session, event_ids: Sequence[str], consumer: str) -> int:
    table = cast(Table, Delivery.__table__)
    result: CursorResult = session.execute(  # type: ignore[assignment]
        update(table)
        .where(table.c.event_id.in_(event_ids), table.c.consumer == consumer,
               table.c.state.not_in(FINAL_STATES))
        .values(state=SUCCEEDED, lease_until=None, updated_at=utcnow())
    )
    return result.rowcount


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


def _seconds_until(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    return (moment - now).total_seconds()
