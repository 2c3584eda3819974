"""Publishing outbox events: one standard Celery message per subscriber, on its own queue."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from celery import Celery

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
    return publish_deliveries(
        app,
        ((event.id, event.payload, subscriber)
         for event in events for subscriber in subscribers_of(event.event_type)),
    )


def publish_deliveries(app: Celery, deliveries: Iterable[tuple[str, Any, Subscriber]]) -> int:
    """Send one message per (event id, payload, subscriber): the relay's and the reconciler's path."""
    sent = 0
    with app.producer_or_acquire() as producer:
        for event_id, payload, subscriber in deliveries:
            app.send_task(
                subscriber.task_name,
                args=[event_id, payload],
                task_id=task_id_for(event_id, subscriber.consumer),
                queue=subscriber.queue,
                producer=producer,
                retry=True,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
            sent += 1
    return sent
