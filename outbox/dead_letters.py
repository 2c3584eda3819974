"""Reading dead letters: list them with filters, show one in full.

A dead letter is a delivery in state `dead` (see outbox/states.py). An
operator names one by its delivery id (`12`) or by its Celery task id
(`<event_id>:<consumer>`, what Flower shows). Replaying and discarding live in
outbox/dead_letter_actions.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from outbox.clock import iso, utcnow
from outbox.databases import ServiceDatabases
from outbox.db import SessionFactory
from outbox.errors import DeliveryNotFound, InvalidArgument
from outbox.models import DeadLetterAction, Delivery, DeliveryError, OutboxEvent
from outbox.states import DEAD, DISCARDED
from outbox.subscriptions import all_consumers, registry, task_id_for
from outbox.tracing import trace_id_of

LISTABLE_STATES = (DEAD, DISCARDED)
_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Filters:
    consumer: str | None = None
    error: str | None = None  # substring of the last error, case-insensitive
    since: datetime | None = None  # died at or after
    until: datetime | None = None  # died before
    state: str = DEAD
    limit: int = 100


def parse_moment(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """`30m`, `2h`, `7d` (that long ago) or an ISO 8601 time (UTC unless it says otherwise)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = relative.groups()
        return (now or utcnow()) - timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"cannot read time {text!r}: use e.g. 30m, 2h, 7d or 2026-11-26T22:00:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def make_filters(*, consumer: str | None = None, error: str | None = None, since: str | None = None,
                 until: str | None = None, state: str | None = None, limit: int | str | None = None
                 ) -> Filters:
    """Filters from an operator's strings (CLI options, query parameters), checked."""
    if consumer and consumer not in all_consumers():
        raise InvalidArgument(f"unknown consumer {consumer!r}: one of {', '.join(all_consumers())}")
    if state and state not in LISTABLE_STATES:
        raise InvalidArgument(f"unknown state {state!r}: one of {', '.join(LISTABLE_STATES)}")
    try:
        count = int(limit) if limit not in (None, "") else 100
    except ValueError:
        raise InvalidArgument(f"limit must be a whole number, not {limit!r}") from None
    if not 1 <= count <= 1000:
        raise InvalidArgument("limit must be between 1 and 1000")
    return Filters(consumer=consumer or None, error=error or None, since=parse_moment(since),
                   until=parse_moment(until), state=state or DEAD, limit=count)


def list_dead_letters(session_factory: SessionFactory, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """Newest first."""
    joined = select(Delivery, OutboxEvent.aggregate_id, OutboxEvent.trace_context).outerjoin(
        OutboxEvent, OutboxEvent.id == Delivery.event_id)
    query = _filtered(joined, filters)
    query = query.order_by(Delivery.updated_at.desc(), Delivery.id.desc()).limit(filters.limit)
    with session_factory() as session:
        return [summary(delivery, order_id, trace_context)
                for delivery, order_id, trace_context in session.execute(query)]


def list_dead_letters_everywhere(databases: ServiceDatabases,
                                 filters: Filters = Filters()) -> list[dict[str, Any]]:
    """`list_dead_letters` over every service's database, newest first across them. A letter
    whose event another service wrote (shipping's, of `order.reserved`) gets its order and
    trace from that service's outbox."""
    rows = []
    for database in databases.distinct():
        found = list_dead_letters(database, filters)
        _fill_from_events_elsewhere([row for row in found if row["order_id"] is None],
                                    databases.others(database))
        rows += found
    return sorted(rows, key=lambda row: (row["updated_at"] or "", row["service"] or ""),
                  reverse=True)[:filters.limit]


def _fill_from_events_elsewhere(rows: list[dict[str, Any]], elsewhere: Sequence[SessionFactory]) -> None:
    for other in elsewhere:
        wanted = {row["event_id"] for row in rows if row["order_id"] is None}
        if not wanted:
            return
        with other() as session:
            events = {event_id: (order_id, trace) for event_id, order_id, trace in session.execute(
                select(OutboxEvent.id, OutboxEvent.aggregate_id, OutboxEvent.trace_context)
                .where(OutboxEvent.id.in_(wanted)))}
        for row in rows:
            if row["event_id"] in events:
                order_id, trace = events[row["event_id"]]
                row.update(order_id=order_id, trace_id=trace_id_of(trace))


def count_dead_letters(session: Session, filters: Filters) -> int:
    return session.scalar(_filtered(select(func.count(Delivery.id)), filters)) or 0


def dead_letter_ids(session: Session, filters: Filters) -> list[int]:
    """Oldest first: a bulk replay sends them in the order they died."""
    query = _filtered(select(Delivery.id), filters).order_by(Delivery.updated_at, Delivery.id)
    return list(session.scalars(query.limit(filters.limit)))


def show_dead_letter(session_factory: SessionFactory, ref: str | int, *,
                     event_sources: Sequence[SessionFactory] = ()) -> dict[str, Any]:
    """One delivery in full: payload, every attempt's error, the traceback, the audit trail.

    `event_sources`: the other services' databases, where the event is when its consumer
    belongs to another service than the one that wrote it (docs/workflow.md)."""
    with session_factory() as session:
        delivery = resolve(session, ref)
        event = find_event(session, delivery.event_id, event_sources)
        errors = session.scalars(
            select(DeliveryError)
            .where(DeliveryError.event_id == delivery.event_id,
                   DeliveryError.consumer == delivery.consumer)
            .order_by(DeliveryError.id)
        ).all()
        actions = session.scalars(
            select(DeadLetterAction).where(DeadLetterAction.delivery_id == delivery.id)
            .order_by(DeadLetterAction.id)
        ).all()
    return {
        **summary(delivery, event.aggregate_id if event else None, event.trace_context if event else None),
        "event_type": event.event_type if event else None,
        "payload": event.payload if event else None,
        "errors": [{"attempt": e.attempt, "outcome": e.outcome, "error": e.error,
                    "at": _iso(e.created_at)} for e in errors],
        "traceback": delivery.traceback,
        "actions": [{"action": a.action, "actor": a.actor, "reason": a.reason,
                     "attempts_before": a.attempts_before, "at": _iso(a.created_at)} for a in actions],
    }


def find_event(session: Session, event_id: str,
               elsewhere: Sequence[SessionFactory] = ()) -> OutboxEvent | None:
    """The event in this database, else in the first of `elsewhere` that has it (detached)."""
    event = session.get(OutboxEvent, event_id)
    for other in elsewhere:
        if event is not None:
            break
        with other() as other_session:
            event = other_session.get(OutboxEvent, event_id)
    return event


def resolve(session: Session, ref: str | int, *, lock: bool = False) -> Delivery:
    """The delivery named by `ref`: a delivery id, or a task id `<event_id>:<consumer>`."""
    text = str(ref).strip()
    query = select(Delivery)
    if text.isdigit():
        query = query.where(Delivery.id == int(text))
    elif ":" in text:
        event_id, consumer = text.rsplit(":", 1)
        query = query.where(Delivery.event_id == event_id, Delivery.consumer == consumer)
    else:
        raise InvalidArgument(f"{text!r} is not a delivery id (a number, or <event_id>:<consumer>)")
    if lock:
        query = query.with_for_update()
    delivery = session.scalars(query).one_or_none()
    if delivery is None:
        raise DeliveryNotFound(f"no delivery {text}")
    return delivery


def summary(delivery: Delivery, order_id: str | None, trace_context: str | None = None) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "consumer": delivery.consumer,
        # The service the consumer belongs to: its delivery records are in that one's database.
        "service": registry.service_of(delivery.consumer),
        "task_id": task_id_for(delivery.event_id, delivery.consumer),
        # The task Flower shows for it: its own, or the batch it ran in.
        "flower_task_id": delivery.task_id or task_id_for(delivery.event_id, delivery.consumer),
        "order_id": order_id,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "updated_at": _iso(delivery.updated_at),
        # The order's trace (tracing on when it was placed): find every attempt in the tracing UI.
        "trace_id": trace_id_of(trace_context),
    }


def _filtered(query: Select, filters: Filters) -> Select:
    query = query.where(Delivery.state == filters.state)
    if filters.consumer:
        query = query.where(Delivery.consumer == filters.consumer)
    if filters.error:
        query = query.where(func.lower(Delivery.last_error).contains(filters.error.lower(),
                                                                      autoescape=True))
    if filters.since:
        query = query.where(Delivery.updated_at >= filters.since)
    if filters.until:
        query = query.where(Delivery.updated_at < filters.until)
    return query


def _iso(moment: datetime | None) -> str | None:
    """To the second: what an operator reads in a table."""
    return None if moment is None else iso(moment.replace(microsecond=0))
