"""Retention: remove, in small batches, the outbox rows and delivery records nothing can need again.

What goes is decided per *event*, never per row: an event is pruned with all its
delivery records (and their error history and audit trail) once

- it was published before the cutoff (now - retention),
- every durable subscriber of its type has a record, and every record is final and
  resolved (succeeded or discarded) since before the cutoff.

So a dead letter keeps its event, payload included, until an operator resolves it
(replayed and succeeded, or discarded), and a delivery that never got a record is
left to the reconciler. Pruning a record on its own would be wrong twice over: the
reconciler would see its event "missing" a delivery and send it again, and a late
copy of the message would find no idempotency key and run a second time.

Hence the one rule an operator can break: the retention must outlast the retry
horizon, the longest time a message of a delivery can still arrive (`retry_horizon`).
tasks/safety.py refuses to start with a shorter one; `orderflow prune` refuses it too.

Each batch is one short transaction: select at most `batch_size` events (SKIP LOCKED
on PostgreSQL: rows a relay holds are left for next time), delete their children then
them by primary key; on PostgreSQL a statement and lock timeout bound how long a
batch can hold anything. Never one table-wide DELETE. Orders are never touched.

An event whose consumer keeps its records in another service's database
(`order.reserved` and the shipping consumer) is pruned the same way, reading that
database's records too; they go right after it (`_prune_crossing` says in which order, and why).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, Select, delete, func, select, text
from sqlalchemy.orm import Session

from outbox.clock import utcnow
from outbox.db import SessionFactory
from outbox.models import DeadLetterAction, Delivery, DeliveryError, OutboxEvent
from outbox.policies import RetryPolicy
from outbox.states import DISCARDED, SUCCEEDED
from outbox.subscriptions import Subscriber, all_consumers, policy_for, registry

# Final *and* resolved: a dead delivery is final but waits for an operator.
PRUNABLE_STATES = (SUCCEEDED, DISCARDED)
# PostgreSQL: no batch statement runs (or waits for a lock) longer than this.
STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 1000
# Between two batches: let the requests and workers have the database.
PAUSE_SECONDS = 0.02
# Events crossing databases: how many pages of candidates one batch reads past the ones the
# other database has not finished (see _ready_across).
MAX_CROSSING_PAGES = 20


@dataclass(frozen=True)
class Horizon:
    """The longest time after publishing a message of a delivery can still arrive, and why."""

    retries_seconds: float  # the slowest consumer: every backoff cap + every attempt's time limit
    consumer: str
    visibility_timeout: float  # a message taken but never acknowledged comes back after this
    reconcile_after: float  # a lost message is resent this long after publishing

    @property
    def seconds(self) -> float:
        return self.retries_seconds + self.visibility_timeout + self.reconcile_after

    def describe(self) -> str:
        return (f"{self.seconds:g}s = {self.consumer}'s retries {self.retries_seconds:g}s (backoff caps "
                f"+ task time limits) + broker visibility timeout {self.visibility_timeout:g}s "
                f"+ RECONCILE_AFTER_SECONDS {self.reconcile_after:g}s")


def retries_seconds(policy: RetryPolicy, *, task_time_limit: float) -> float:
    """Longest a delivery can spend retrying: each wait at its cap, each attempt at its time limit."""
    waits = sum(min(policy.backoff_max, policy.backoff_base * 2 ** (n - 1))
                for n in range(1, policy.max_retries + 1))
    return waits + policy.max_attempts * task_time_limit


def retry_horizon(policies: Mapping[str, RetryPolicy], *, task_time_limit: float,
                  visibility_timeout: float, reconcile_after: float) -> Horizon:
    """Pure: the horizon from each consumer's policy and the broker's and reconciler's delays."""
    slowest = max(policies, key=lambda c: retries_seconds(policies[c], task_time_limit=task_time_limit),
                  default="(no consumer)")
    longest = (retries_seconds(policies[slowest], task_time_limit=task_time_limit)
               if slowest in policies else 0.0)
    return Horizon(longest, slowest, float(visibility_timeout), float(reconcile_after))


def declared_horizon(*, retry_overrides: Any, task_time_limit: float, visibility_timeout: float,
                     reconcile_after: float) -> Horizon:
    """The horizon of the consumers declared now, with the operator's retry overrides."""
    policies = {c: policy_for(c, retry_overrides) for c in all_consumers()}
    return retry_horizon(policies, task_time_limit=task_time_limit, visibility_timeout=visibility_timeout,
                         reconcile_after=reconcile_after)


def retention_problem(retention_seconds: float, horizon: Horizon, *, name: str = "ORDERFLOW_RETENTION"
                      ) -> str | None:
    """One line if `retention_seconds` does not outlast the horizon, else None."""
    if retention_seconds > horizon.seconds:
        return None
    return (f"{name} {retention_seconds:g}s must exceed the retry horizon {horizon.describe()}: a "
            "delivery record pruned before its last possible redelivery lets that message run twice")


def prune_cutoff(now: datetime, retention_seconds: float) -> datetime:
    """Pure: what was finished before this moment may go."""
    return now - timedelta(seconds=retention_seconds)


@dataclass
class Pruned:
    events: int = 0
    deliveries: int = 0
    errors: int = 0
    actions: int = 0
    batches: int = 0
    seconds: float = 0.0

    def add(self, other: Pruned) -> None:
        self.events += other.events
        self.deliveries += other.deliveries
        self.errors += other.errors
        self.actions += other.actions

    def describe(self) -> str:
        return (f"pruned {self.events} outbox event(s), {self.deliveries} delivery record(s), "
                f"{self.errors} attempt error(s), {self.actions} audit row(s) in {self.batches} "
                f"batch(es), {self.seconds:.2f}s")


# Where a subscriber keeps its delivery records (tasks.runtime.Runtime.records_of).
RecordsOf = Callable[[Subscriber], SessionFactory]


def prune(session_factory: SessionFactory, *, retention_seconds: float, batch_size: int = 500,
          records_of: RecordsOf | None = None, max_seconds: float | None = None,
          now: datetime | None = None, stop: Callable[[], bool] = lambda: False) -> Pruned:
    """Prune batch after batch until none is full, `max_seconds` have passed or `stop()` says so.

    `records_of`: the database each subscriber keeps its records in (default: this one). The
    events of a type with a subscriber recording in another database are pruned once that
    database's records of them are final too, and those records go with them."""
    cutoff = prune_cutoff(now or utcnow(), retention_seconds)
    started = time.monotonic()
    total = Pruned()
    while not stop():
        done = prune_batch(session_factory, cutoff=cutoff, batch_size=batch_size, records_of=records_of)
        total.add(done)
        total.batches += 1
        if done.events < batch_size or (max_seconds is not None and
                                        time.monotonic() - started >= max_seconds):
            break
        time.sleep(PAUSE_SECONDS)
    total.seconds = time.monotonic() - started
    return total


def prune_batch(session_factory: SessionFactory, *, cutoff: datetime, batch_size: int,
                records_of: RecordsOf | None = None) -> Pruned:
    """Short transactions: at most `batch_size` events with their records."""
    where = records_of or (lambda _subscriber: session_factory)

    def here(subscriber: Subscriber) -> bool:
        return where(subscriber) is session_factory

    with session_factory.begin() as session:
        _bound(session)
        event_ids: list[str] = []
        for query in candidate_queries(cutoff, here):
            if len(event_ids) >= batch_size:
                break
            event_ids += session.scalars(query.limit(batch_size - len(event_ids))).all()
        done = _delete(session, event_ids)
    for event_type in registry.event_types():
        subscribers = registry.subscribers_of(event_type)
        if all(here(s) for s in subscribers) or done.events >= batch_size:
            continue
        done.add(_prune_crossing(session_factory, cutoff=cutoff, event_type=event_type,
                                 subscribers=subscribers, records_of=where,
                                 limit=batch_size - done.events))
    return done


def candidate_queries(cutoff: datetime,
                      records_here: Callable[[Subscriber], bool] = lambda _subscriber: True,
                      ) -> list[Select[Any]]:
    """One query per declared event type (it must have a final record of each of its
    subscribers), then one for the types nobody declares any more (no record is required).

    A type with a subscriber that keeps its records in another database (another service's
    consumer) is left to `_prune_crossing`, which reads that database too."""
    declared = registry.event_types()
    queries = []
    for event_type in declared:
        subscribers = registry.subscribers_of(event_type)
        if not all(records_here(s) for s in subscribers):
            continue
        queries.append(_finished_here(cutoff, event_type, [s.consumer for s in subscribers]))
    queries.append(_finished_before(cutoff).where(OutboxEvent.event_type.not_in(declared)))
    return queries


def _prune_crossing(session_factory: SessionFactory, *, cutoff: datetime, event_type: str,
                    subscribers: Sequence[Subscriber], records_of: RecordsOf, limit: int) -> Pruned:
    """Events of `event_type` (written here) some of whose subscribers record in other databases
    (order.reserved: the shipping consumer's records are in the shipping database).

    An event goes only when every record of it, here and there, is final and resolved since
    before the cutoff. The event and its records here are deleted and committed first, then
    its records there: at no moment is the event present while a record of it is missing (the
    reconciler would take that for a lost message and send it again). A crash between the two
    commits leaves those few records there (final, their event gone): space and a line in
    `dead-letters list --state discarded` at most, never a second run."""
    here = [s.consumer for s in subscribers if records_of(s) is session_factory]
    away: dict[int, tuple[SessionFactory, list[str]]] = {}
    for subscriber in subscribers:
        database = records_of(subscriber)
        if database is not session_factory:
            away.setdefault(id(database), (database, []))[1].append(subscriber.consumer)
    with session_factory.begin() as session:
        _bound(session)
        event_ids = _ready_across(session, _finished_here(cutoff, event_type, here), away.values(),
                                  cutoff=cutoff, limit=limit)
        done = _delete(session, event_ids)
    for database, consumers in away.values():
        if event_ids:
            with database.begin() as other:
                _bound(other)
                done.add(_delete_records(other, event_ids, consumers))
    return done


def _ready_across(session: Session, finished_here: Select[Any],
                  away: Iterable[tuple[SessionFactory, list[str]]], *, cutoff: datetime,
                  limit: int) -> list[str]:
    """Up to `limit` events, oldest first, finished here and in every other database.

    The oldest events finished here may not be finished there (a letter still dead in the
    shipping database): the scan goes on past them, page after page (by published_at, id),
    so they never stop the pruning of the events behind them. At most `MAX_CROSSING_PAGES`
    pages per batch: the next pass goes on."""
    away = list(away)
    query = finished_here.add_columns(OutboxEvent.published_at).order_by(None).order_by(
        OutboxEvent.published_at, OutboxEvent.id)
    ready: list[str] = []
    after: tuple[datetime, str] | None = None
    for _page in range(MAX_CROSSING_PAGES):
        page_query = query if after is None else query.where(
            (OutboxEvent.published_at > after[0])
            | ((OutboxEvent.published_at == after[0]) & (OutboxEvent.id > after[1])))
        page = session.execute(page_query.limit(limit)).all()
        found = {event_id for event_id, _published in page}
        for database, consumers in away:
            if found:
                found &= _finished_in(database, found, consumers, cutoff)
        ready += [event_id for event_id, _published in page if event_id in found][:limit - len(ready)]
        if len(ready) >= limit or len(page) < limit:
            break
        after = (page[-1][1], page[-1][0])
    return ready


def _finished_in(database: SessionFactory, event_ids: set[str], consumers: list[str],
                 cutoff: datetime) -> set[str]:
    """Those of `event_ids` that every one of `consumers` finished (resolved) before the cutoff,
    by their records in `database`."""
    with database.begin() as session:
        _bound(session)
        rows = session.execute(
            select(Delivery.event_id, func.count())
            .where(Delivery.event_id.in_(event_ids), Delivery.consumer.in_(consumers),
                   Delivery.state.in_(PRUNABLE_STATES), Delivery.updated_at < cutoff)
            .group_by(Delivery.event_id))
        return {event_id for event_id, resolved in rows if resolved >= len(consumers)}


def _finished_here(cutoff: datetime, event_type: str, consumers: list[str]) -> Select[Any]:
    """Events of the type finished before the cutoff with a record of each of `consumers` here."""
    query = _finished_before(cutoff).where(OutboxEvent.event_type == event_type)
    if consumers:
        resolved = (select(func.count()).select_from(Delivery)
                    .where(Delivery.event_id == OutboxEvent.id, Delivery.consumer.in_(consumers))
                    .scalar_subquery())
        query = query.where(resolved >= len(consumers))
    return query


def _finished_before(cutoff: datetime) -> Select[Any]:
    unfinished = (select(Delivery.id)
                  .where(Delivery.event_id == OutboxEvent.id,
                         Delivery.state.not_in(PRUNABLE_STATES) | (Delivery.updated_at >= cutoff))
                  .exists())
    return (select(OutboxEvent.id)
            .where(OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < cutoff, ~unfinished)
            .order_by(OutboxEvent.published_at)
            .with_for_update(skip_locked=True))


def _bound(session: Session) -> None:
    """PostgreSQL: this transaction neither runs nor waits for a lock for long."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        session.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))


def _delete(session: Session, event_ids: Sequence[str]) -> Pruned:
    if not event_ids:
        return Pruned()
    done = _delete_records(session, event_ids)
    done.events = _count(session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(event_ids))))
    return done


def _delete_records(session: Session, event_ids: Sequence[str],
                    consumers: Sequence[str] | None = None) -> Pruned:
    """The delivery records of `event_ids` (of `consumers` only, if given), with their error
    history and audit trail."""
    records = [Delivery.event_id.in_(event_ids)]
    errors = [DeliveryError.event_id.in_(event_ids)]
    if consumers is not None:
        records.append(Delivery.consumer.in_(consumers))
        errors.append(DeliveryError.consumer.in_(consumers))
    delivery_ids = select(Delivery.id).where(*records).scalar_subquery()
    actions = _count(session.execute(delete(DeadLetterAction).where(
        DeadLetterAction.delivery_id.in_(delivery_ids))))
    error_rows = _count(session.execute(delete(DeliveryError).where(*errors)))
    deliveries = _count(session.execute(delete(Delivery).where(*records)))
    return Pruned(deliveries=deliveries, errors=error_rows, actions=actions)


def _count(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount
