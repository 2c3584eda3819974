"""Publishing outbox events: one standard Celery message per subscriber, on its own queue.

Messages are built by Celery itself (`send_task`, protocol 2, with the
`task-sent` event Flower shows), so a stock `celery worker` consumes them. What
differs from a plain `apply_async` loop is only how they reach Redis: inside
kombu's `Producer.batch()` the LPUSH of every message and the PUBLISH of every
`task-sent` event are buffered in one non-transactional Redis pipeline and sent
in one round trip per batch (kombu flushes every `BATCH_MAX_COMMANDS`).

Failure is all-or-retry: if a flush fails the whole call raises, the caller
does not mark the events published, and the relay sends them again later; a
message that did reach Redis before the failure is then delivered twice, which
the delivery records make harmless.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from celery import Celery

from orders.dead_letter_actions import Publish, Redelivery
from orders.subscriptions import Subscriber, subscribers_of, task_id_for

# Fail fast when the broker is away: the relay comes back for the event later.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# Redis commands per pipeline round trip: 2 per message (LPUSH + task-sent PUBLISH).
BATCH_MAX_COMMANDS = 1000


class PublishableEvent(Protocol):
    id: str
    event_type: str
    payload: Any


def publish_events(app: Celery, events: Iterable[PublishableEvent]) -> int:
    """Send every event to every subscriber; returns the number of messages sent.

    The task id `<event_id>:<consumer>` is deterministic, so a republished
    event is the same task to Flower and the same delivery record to us.
    """
    sent = 0
    declared: set[str] = set()
    with app.producer_or_acquire() as producer, producer.batch(max_size=BATCH_MAX_COMMANDS):
        for event in events:
            # Computed once per event rather than per message (a third of the publish CPU).
            argsrepr = repr([event.id, event.payload])
            for subscriber in subscribers_of(event.event_type):
                _send(app, subscriber.task_name, subscriber.queue, event.id, event.payload,
                      task_id_for(event.id, subscriber.consumer), producer, argsrepr=argsrepr,
                      # Declaring a queue is idempotent; once per call is enough.
                      declare=subscriber.queue not in declared)
                declared.add(subscriber.queue)
                sent += 1
    return sent


def publish_deliveries(app: Celery, deliveries: Iterable[tuple[str, Any, Subscriber]]) -> int:
    """One message per (event id, payload, subscriber): what the reconciler resends."""
    sent = 0
    with app.producer_or_acquire() as producer:
        for event_id, payload, subscriber in deliveries:
            _send(app, subscriber.task_name, subscriber.queue, event_id, payload,
                  task_id_for(event_id, subscriber.consumer), producer)
            sent += 1
    return sent


def redeliver(app: Celery, redelivery: Redelivery) -> None:
    """One consumer's message again (a dead-letter replay): same task, same id, its queue only."""
    with app.producer_or_acquire() as producer:
        _send(app, redelivery.task_name, redelivery.queue, redelivery.event_id, redelivery.payload,
              redelivery.task_id, producer)


def replay_publisher(app: Celery | None = None) -> Publish:
    """The `publish` callable the dead-letter use cases take, bound to the project's Celery app."""
    if app is None:
        from tasks import app as default_app

        app = default_app
    bound: Celery = app
    return lambda redelivery: redeliver(bound, redelivery)


def _send(app: Celery, task_name: str, queue: str, event_id: str, payload: Any, task_id: str,
          producer: Any, *, argsrepr: str | None = None, declare: bool = True) -> None:
    args = [event_id, payload]
    app.send_task(task_name, args=args, task_id=task_id, queue=queue, producer=producer,
                  retry=True, retry_policy=PUBLISH_RETRY_POLICY,
                  # What Flower shows as the args: a plain repr, not Celery's costlier saferepr.
                  argsrepr=argsrepr or repr(args), kwargsrepr="{}",
                  declare=None if declare else [])
