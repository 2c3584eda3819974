"""Acting on dead letters: replay one, replay many (throttled), discard one. Every action is audited.

A replay resets the delivery (state `pending`, attempts 0, so its retry policy
applies afresh) and then publishes ONE message, to that consumer's queue only,
with the usual task id `<event_id>:<consumer>`: the other consumers of the
event never run again. The caller passes `publish` (tasks/publisher.py's
`redeliver`), which keeps this module free of Celery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import CursorResult, update

from outbox.clock import utcnow
from outbox.db import SessionFactory
from outbox.dead_letters import Filters, dead_letter_ids, find_event, resolve
from outbox.errors import InvalidArgument, NotReplayable, ReplayFailed
from outbox.models import DeadLetterAction, Delivery, OutboxEvent
from outbox.redelivery import Publish, Redelivery
from outbox.states import DEAD, DISCARDED, PENDING, SUCCEEDED
from outbox.subscriptions import subscribers_of, task_id_for

log = logging.getLogger(__name__)

REPLAY, DISCARD, REPLAY_FAILED = "replay", "discard", "replay_failed"


@dataclass(frozen=True)
class Replayed:
    delivery_id: int
    task_id: str
    consumer: str


@dataclass
class BulkReplay:
    replayed: list[Replayed] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (delivery id, why)


def replay_dead_letter(session_factory: SessionFactory, *, ref: str | int, actor: str, reason: str,
                       publish: Publish, event_sources: Sequence[SessionFactory] = ()) -> Replayed:
    """Reset one dead delivery and publish it again; refused unless it is dead.

    `event_sources`: the other services' databases, to find the event of a consumer that
    belongs to another service than the one that wrote it."""
    _require_actor(actor)
    with session_factory.begin() as session:
        delivery = resolve(session, ref)
        _require_dead(delivery, "replay")
        redelivery = _redelivery_for(find_event(session, delivery.event_id, event_sources), delivery)
        attempts_before = delivery.attempts
        # Conditional on still being dead: two operators replaying at once send one message.
        _transition(session, delivery, to=PENDING, attempts=0)
        session.add(DeadLetterAction(delivery_id=delivery.id, action=REPLAY, actor=actor,
                                     reason=reason, attempts_before=attempts_before))
    # Published only after the reset committed: a worker must never find it still dead.
    try:
        publish(redelivery)
    except Exception as exc:
        _back_to_dead(session_factory, delivery.id, attempts_before, actor, exc)
        raise ReplayFailed(f"could not publish the replay of delivery {delivery.id} "
                           f"({type(exc).__name__}: {exc}); it is dead again, try later") from exc
    log.info("event=%s consumer=%s replayed by %s (was %d attempts): %s",
             delivery.event_id, delivery.consumer, actor, attempts_before, reason)
    return Replayed(delivery.id, redelivery.task_id, delivery.consumer)


def replay_dead_letters(session_factory: SessionFactory, *, filters: Filters, actor: str, reason: str,
                        publish: Publish, per_second: float = 5.0,
                        sleep: Callable[[float], None] = time.sleep,
                        progress: Callable[[Replayed], None] | None = None,
                        event_sources: Sequence[SessionFactory] = ()) -> BulkReplay:
    """Replay every dead letter of one consumer matching `filters`, oldest first, throttled.

    The throttle keeps a recovered downstream (an SMTP server back from an
    outage) from being hit by the whole backlog at once. `event_sources`: as for one replay.
    """
    if not filters.consumer:
        raise InvalidArgument("a bulk replay needs a consumer")
    if per_second <= 0:
        raise InvalidArgument("the replay rate must be above 0 per second")
    with session_factory() as session:
        ids = dead_letter_ids(session, filters)
    result = BulkReplay()
    for index, delivery_id in enumerate(ids):
        if index:
            sleep(1.0 / per_second)
        try:
            replayed = replay_dead_letter(session_factory, ref=delivery_id, actor=actor, reason=reason,
                                          publish=publish, event_sources=event_sources)
        except NotReplayable as exc:  # changed since listed (another operator): skip it
            result.refused.append((delivery_id, exc.message))
            continue
        # ReplayFailed (broker away) propagates: every following one would fail the same way.
        result.replayed.append(replayed)
        if progress:
            progress(replayed)
    return result


def discard_dead_letter(session_factory: SessionFactory, *, ref: str | int, actor: str,
                        reason: str) -> dict[str, Any]:
    """Set a dead letter aside for good (state `discarded`), saying why."""
    _require_actor(actor)
    if not reason.strip():
        raise InvalidArgument("discarding needs a reason")
    with session_factory.begin() as session:
        delivery = resolve(session, ref)
        _require_dead(delivery, "discard")
        _transition(session, delivery, to=DISCARDED, attempts=delivery.attempts)
        session.add(DeadLetterAction(delivery_id=delivery.id, action=DISCARD, actor=actor,
                                     reason=reason, attempts_before=delivery.attempts))
    log.info("event=%s consumer=%s discarded by %s: %s", delivery.event_id, delivery.consumer,
             actor, reason)
    return {"id": delivery.id, "task_id": task_id_for(delivery.event_id, delivery.consumer),
            "state": DISCARDED}


def _require_actor(actor: str) -> None:
    if not actor or not actor.strip():
        raise InvalidArgument("say who you are (--by / \"by\"): the audit trail records it")


def _require_dead(delivery: Delivery, verb: str) -> None:
    name = f"delivery {delivery.id} ({delivery.consumer} of event {delivery.event_id})"
    if delivery.state == SUCCEEDED:
        raise NotReplayable(f"{name} already succeeded; refusing to {verb} it (it would run twice)")
    if delivery.state == DISCARDED:
        raise NotReplayable(f"{name} was discarded; refusing to {verb} it")
    if delivery.state != DEAD:
        raise NotReplayable(f"{name} is {delivery.state}, not dead: it is still being delivered; "
                            f"only dead letters can be {verb}ed")


def _redelivery_for(event: OutboxEvent | None, delivery: Delivery) -> Redelivery:
    subscriber = next((s for s in subscribers_of(event.event_type) if s.consumer == delivery.consumer),
                      None) if event else None
    if event is None or subscriber is None:
        raise NotReplayable(f"delivery {delivery.id}: its event or its consumer "
                            f"{delivery.consumer!r} no longer exists; nothing to replay")
    return Redelivery(event.id, delivery.consumer, subscriber.task_name, subscriber.queue, event.payload)


def _transition(session: Any, delivery: Delivery, *, to: str, attempts: int) -> None:
    result: CursorResult = session.execute(
        update(Delivery).where(Delivery.id == delivery.id, Delivery.state == DEAD)
        .values(state=to, attempts=attempts, lease_until=None, updated_at=utcnow())
    )
    if result.rowcount != 1:
        raise NotReplayable(f"delivery {delivery.id} changed meanwhile (another operator?); look again")


def _back_to_dead(session_factory: SessionFactory, delivery_id: int, attempts: int, actor: str,
                  exc: Exception) -> None:
    with session_factory.begin() as session:
        session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.state == PENDING)
            .values(state=DEAD, attempts=attempts, updated_at=utcnow())
        )
        session.add(DeadLetterAction(delivery_id=delivery_id, action=REPLAY_FAILED, actor=actor,
                                     reason=f"{type(exc).__name__}: {exc}", attempts_before=attempts))
