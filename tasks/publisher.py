"""Publishing outbox events: one standard Celery message per subscriber, on its own queue.

Messages are built by Celery itself (`send_task`, protocol 2, with the
`task-sent` event Flower shows), so a stock `celery worker` consumes them. What
differs from a plain `apply_async` loop is only how they reach Redis: inside
kombu's `Producer.batch()` the LPUSH of every message and the PUBLISH of every
`task-sent` event are buffered in one non-transactional Redis pipeline and sent
in one round trip per batch (kombu flushes every `BATCH_MAX_COMMANDS`).

With `batch_max` > 1, the events of one call that go to the same subscriber
are packed into messages of up to `batch_max` deliveries (`batch=[[event_id,
payload], ...]`) for subscribers whose task takes them (tasks/delivery_task.py);
a single event still goes as a plain one-delivery message. The relay passes
its whole claimed batch, so messages carry several deliveries only when events
piled up: an idle system sends one message per delivery as before.

On RabbitMQ every message must be confirmed by the broker (`confirm_publish`);
the messages of one call go out back to back and the call then waits once for
all their confirms (tasks/confirms.py), instead of one round trip per message.

Failure is all-or-retry: if a flush fails, or a confirm is missing or a nack,
the whole call raises, the caller does not mark the events published, and the
relay sends them again later; a message that did reach the broker before the
failure is then delivered twice, which the delivery records make harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from celery import Celery

from outbox import tracing
from outbox.redelivery import Publish, Redelivery
from outbox.subscriptions import Subscriber, batch_task_id, subscribers_of, task_id_for
from tasks.confirms import confirmed

# Fail fast when the broker is away: the relay comes back for the event later.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
# Redis commands per pipeline round trip: 2 per message (LPUSH + task-sent PUBLISH).
BATCH_MAX_COMMANDS = 1000


class PublishableEvent(Protocol):
    id: str
    event_type: str
    payload: Any


def publish_events(app: Celery, events: Iterable[PublishableEvent], *, batch_max: int = 1) -> int:
    """Send every event to every subscriber; returns the number of messages sent.

    The task id `<event_id>:<consumer>` is deterministic, so a republished
    event is the same task to Flower and the same delivery record to us.
    """
    events = list(events)
    sent = 0
    declared: set[str] = set()
    argsreprs: dict[str, str] = {}  # once per event, not per message (a third of the publish CPU)
    with _publish_spans(events) as traces, app.producer_or_acquire() as producer, confirmed(producer), \
            producer.batch(max_size=BATCH_MAX_COMMANDS):
        for subscriber, group in _by_subscriber(events):
            size = batch_max if subscriber.batches else 1
            for start in range(0, len(group), size):
                chunk = group[start:start + size]
                # Declaring a queue is idempotent; once per call is enough.
                declare = subscriber.queue not in declared
                declared.add(subscriber.queue)
                if len(chunk) == 1:
                    event = chunk[0]
                    if event.id not in argsreprs:
                        argsreprs[event.id] = _argsrepr(event)
                    _send(app, subscriber.task_name, subscriber.queue, event.id, event.payload,
                          task_id_for(event.id, subscriber.consumer), producer,
                          argsrepr=argsreprs[event.id], declare=declare, headers=_headers(traces, [event]))
                else:
                    _send_batch(app, subscriber, chunk, producer, declare=declare,
                                headers=_headers(traces, chunk))
                sent += 1
    return sent


@contextmanager
def _publish_spans(events: list[PublishableEvent]) -> Iterator[dict[str, str]]:
    """With tracing on: one `publish` span per event, child of the request that wrote it;
    yields event id -> the traceparent its messages carry. Off: an empty dict, nothing else."""
    if not tracing.enabled():
        yield {}
        return
    spans = {event.id: tracing.start(
        f"publish {event.event_type}", parent=getattr(event, "trace_context", None), kind="producer",
        attributes={"orderflow.event_id": event.id, "orderflow.event_type": event.event_type})
        for event in events}
    outcome = "failed"
    try:
        yield {event_id: tracing.traceparent_of(span) or "" for event_id, span in spans.items()}
        outcome = "published"
    finally:
        for span in spans.values():
            tracing.end(span, outcome=outcome)


def _headers(traces: dict[str, str], events: list[PublishableEvent]) -> dict[str, Any] | None:
    carried = {event.id: traces[event.id] for event in events if traces.get(event.id)}
    return {tracing.HEADER: carried} if carried else None


def _by_subscriber(events: list[PublishableEvent]) -> list[tuple[Subscriber, list[PublishableEvent]]]:
    """Each subscriber with its events, in the order given (the outbox's order)."""
    groups: dict[Subscriber, list[PublishableEvent]] = {}
    for event in events:
        for subscriber in subscribers_of(event.event_type):
            groups.setdefault(subscriber, []).append(event)
    return list(groups.items())


def publish_deliveries(app: Celery, deliveries: Iterable[tuple[str, Any, Subscriber]]) -> int:
    """One message per (event id, payload, subscriber): what the reconciler resends."""
    sent = 0
    with app.producer_or_acquire() as producer, confirmed(producer):
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


def _argsrepr(event: PublishableEvent) -> str:
    # What Flower shows as the args: a plain repr, not Celery's costlier saferepr.
    return repr([event.id, event.payload])


def _send_batch(app: Celery, subscriber: Subscriber, events: list[PublishableEvent], producer: Any, *,
                declare: bool, headers: dict[str, Any] | None = None) -> None:
    ids = [event.id for event in events]
    app.send_task(subscriber.task_name, kwargs={"batch": [[event.id, event.payload] for event in events]},
                  task_id=batch_task_id(ids, subscriber.consumer), queue=subscriber.queue, producer=producer,
                  retry=True, retry_policy=PUBLISH_RETRY_POLICY,
                  # Flower shows the event ids, not every payload.
                  argsrepr="()", kwargsrepr=f"{{'batch': {ids!r}}}",
                  declare=None if declare else [], headers=headers)


def _send(app: Celery, task_name: str, queue: str, event_id: str, payload: Any, task_id: str,
          producer: Any, *, argsrepr: str | None = None, declare: bool = True,
          headers: dict[str, Any] | None = None) -> None:
    args = [event_id, payload]
    app.send_task(task_name, args=args, task_id=task_id, queue=queue, producer=producer,
                  retry=True, retry_policy=PUBLISH_RETRY_POLICY,
                  argsrepr=argsrepr or repr(args), kwargsrepr="{}",
                  declare=None if declare else [], headers=headers)
