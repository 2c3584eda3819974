"""Publishing outbox events: one standard Celery message per subscriber, on its own queue."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from celery import Celery

from orders.dead_letter_actions import Publish, Redelivery
from orders.subscriptions import Subscriber, subscribers_of, task_id_for

# Fail fast when the broker is away: the relay comes back for the event later.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


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
    with app.producer_or_acquire() as producer:
        for event in events:
            for subscriber in subscribers_of(event.event_type):
                _send(app, subscriber.task_name, subscriber.queue, event.id, event.payload,
                      task_id_for(event.id, subscriber.consumer), producer)
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
          producer: Any) -> None:
    app.send_task(task_name, args=[event_id, payload], task_id=task_id, queue=queue,
                  producer=producer, retry=True, retry_policy=PUBLISH_RETRY_POLICY)
