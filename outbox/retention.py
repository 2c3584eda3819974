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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
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


def prune(session_factory: SessionFactory, *, retention_seconds: float, batch_size: int = 500,
          records_here: Callable[[Subscriber], bool] = lambda _subscriber: True,
          max_seconds: float | None = None, now: datetime | None = None,
          stop: Callable[[], bool] = lambda: False) -> Pruned:
    """Prune batch after batch until none is full, `max_seconds` have passed or `stop()` says so."""
    cutoff = prune_cutoff(now or utcnow(), retention_seconds)
    started = time.monotonic()
    total = Pruned()
    while not stop():
        done = prune_batch(session_factory, cutoff=cutoff, batch_size=batch_size, records_here=records_here)
        total.add(done)
        total.batches += 1
        if done.events < batch_size or (max_seconds is not None and
                                        time.monotonic() - started >= max_seconds):
            break
        time.sleep(PAUSE_SECONDS)
    total.seconds = time.monotonic() - started
    return total


def prune_batch(session_factory: SessionFactory, *, cutoff: datetime, batch_size: int,
                records_here: Callable[[Subscriber], bool] = lambda _subscriber: True) -> Pruned:
    """One short transaction: at most `batch_size` events with their records."""
    with session_factory.begin() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            session.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
        event_ids: list[str] = []
        for query in candidate_queries(cutoff, records_here):
            if len(event_ids) >= batch_size:
                break
            event_ids += session.scalars(query.limit(batch_size - len(event_ids))).all()
        return _delete(session, event_ids)


def candidate_queries(cutoff: datetime,
                      records_here: Callable[[Subscriber], bool] = lambda _subscriber: True,
                      ) -> list[Select[Any]]:
    """One query per declared event type (it must have a final record of each of its
    subscribers), then one for the types nobody declares any more (no record is required).

    A type with a subscriber that keeps its records in another database (another service's
    consumer) is never pruned here: nothing in this database says that consumer finished,
    and pruning the event would leave its dead letter with nothing to replay. Such events
    stay until cross-database pruning exists (docs/workflow.md, "Retention")."""
    declared = registry.event_types()
    queries = []
    for event_type in declared:
        subscribers = registry.subscribers_of(event_type)
        if not all(records_here(s) for s in subscribers):
            continue
        consumers = [s.consumer for s in subscribers]
        query = _finished_before(cutoff).where(OutboxEvent.event_type == event_type)
        if consumers:
            resolved = (select(func.count()).select_from(Delivery)
                        .where(Delivery.event_id == OutboxEvent.id, Delivery.consumer.in_(consumers))
                        .scalar_subquery())
            query = query.where(resolved >= len(consumers))
        queries.append(query)
    queries.append(_finished_before(cutoff).where(OutboxEvent.event_type.not_in(declared)))
    return queries


def _finished_before(cutoff: datetime) -> Select[Any]:
    unfinished = (select(Delivery.id)
                  .where(Delivery.event_id == OutboxEvent.id,
                         Delivery.state.not_in(PRUNABLE_STATES) | (Delivery.updated_at >= cutoff))
                  .exists())
    return (select(OutboxEvent.id)
            .where(OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < cutoff, ~unfinished)
            .order_by(OutboxEvent.published_at)
            .with_for_update(skip_locked=True))


def _delete(session: Session, event_ids: Sequence[str]) -> Pruned:
    if not event_ids:
        return Pruned()
    delivery_ids = select(Delivery.id).where(Delivery.event_id.in_(event_ids)).scalar_subquery()
    actions = _count(session.execute(delete(DeadLetterAction).where(
        DeadLetterAction.delivery_id.in_(delivery_ids))))
    errors = _count(session.execute(delete(DeliveryError).where(DeliveryError.event_id.in_(event_ids))))
    records = _count(session.execute(delete(Delivery).where(Delivery.event_id.in_(event_ids))))
    events = _count(session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(event_ids))))
    return Pruned(events=events, deliveries=records, errors=errors, actions=actions)


def _count(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return result.rowcount
