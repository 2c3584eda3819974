"""Relay publish rate: events/s the relay publishes (3 messages each) vs a plain apply_async loop.

Interleaved per repetition, each on an empty Redis, for the same 2,000 events:
- `relay (batched)`: `relay_once` passes (claim rows, publish, mark published)
  until the outbox is empty — the real relay code, database included;
- `relay, per-message publish (before)`: the same passes with the publisher
  this project had before batching (one LPUSH + one task-sent PUBLISH per message);
- `apply_async loop`: the same messages, one `apply_async` each, no database at all.
Each run checks that exactly 3 messages per event reached the queues.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable

import redis
from celery import Celery
from sqlalchemy import text

import tasks.relay
from bench.common import flush
from bench.database import reset
from config.settings import Settings
from orders.subscriptions import ORDER_CREATED
from outbox.db import make_engine, make_session_factory
from outbox.subscriptions import all_consumers, subscribers_of, task_id_for
from tasks.publisher import PUBLISH_RETRY_POLICY, PublishableEvent, publish_events
from tasks.runtime import Runtime

SAMPLE_PAYLOAD = {
    "customer_email": "ada@example.com", "customer_name": "Ada", "total_cents": 4900, "currency": "EUR",
    "lines": [{"sku": "mug", "name": "Enamel mug", "quantity": 2, "unit_price_cents": 1200},
              {"sku": "tee", "name": "Organic T-shirt", "quantity": 1, "unit_price_cents": 2500}],
    "occurred_at": "2026-11-26T23:00:00+00:00",
}


def seed_unpublished(database_url: str, n: int) -> None:
    """n committed, unpublished order.created events (older than any relay grace)."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO outbox (id, event_type, aggregate_id, payload, created_at, publish_attempts) "
                "SELECT gen_random_uuid()::text, :type, gen_random_uuid()::text, CAST(:payload AS json), "
                "now() - interval '1 minute', 0 FROM generate_series(1, :n)"),
                {"type": ORDER_CREATED, "payload": json.dumps(SAMPLE_PAYLOAD), "n": n})
    finally:
        engine.dispose()


def legacy_publish_events(app: Celery, events: Iterable[PublishableEvent], **_options: object) -> int:
    """The publisher before batching (kept here only to show the difference)."""
    sent = 0
    with app.producer_or_acquire() as producer:
        for event in events:
            for subscriber in subscribers_of(event.event_type):
                app.send_task(subscriber.task_name, args=[event.id, event.payload],
                              task_id=task_id_for(event.id, subscriber.consumer), queue=subscriber.queue,
                              producer=producer, retry=True, retry_policy=PUBLISH_RETRY_POLICY)
                sent += 1
    return sent


def queued(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(client.llen(q) for q in all_consumers())
    finally:
        client.close()


def timed_passes(app: Celery, runtime: Runtime, n: int) -> float:
    """Seconds of `relay_once` passes until the outbox is empty; exactly `n` events must go out."""
    t0 = time.perf_counter()
    published = 0
    while (got := tasks.relay.relay_once(app, runtime, grace_seconds=0)):
        published += got
    elapsed = time.perf_counter() - t0
    if published != n:
        raise AssertionError(f"relay published {published} events, expected {n}")
    return elapsed


def relay_pass(app: Celery, runtime: Runtime, n: int, *, batched: bool) -> float:
    tasks.relay.publish_events = publish_events if batched else legacy_publish_events  # type: ignore[assignment]
    try:
        return timed_passes(app, runtime, n)
    finally:
        tasks.relay.publish_events = publish_events  # type: ignore[assignment]


def apply_async_loop(app: Celery, runtime: Runtime) -> tuple[float, int]:
    from outbox.models import OutboxEvent

    with runtime.session_factory() as session:
        events = [(e.id, e.payload) for e in session.query(OutboxEvent).all()]
    subscribers = subscribers_of(ORDER_CREATED)
    t0 = time.perf_counter()
    for event_id, payload in events:
        for sub in subscribers:
            app.tasks[sub.task_name].apply_async(args=[event_id, payload],
                                                  task_id=task_id_for(event_id, sub.consumer))
    return time.perf_counter() - t0, len(events)


VARIANTS = ("relay (batched)", "relay, per-message publish (before)", "apply_async loop")


def run(redis_url: str, database_url: str, *, n_events: int = 2000, repeat: int = 3) -> dict[str, list[dict]]:
    from bench.pipeline import celery_app

    app = celery_app(redis_url, events=True)
    # One message per delivery (3 per event), as this target counts them: the packing of
    # deliveries into fewer messages under load is measured in the throughput section.
    settings = Settings(database_url=database_url, redis_url=redis_url, delivery_batch_max=1)
    engine = make_engine(database_url, pre_ping=False)
    runtime = Runtime(settings, make_session_factory(engine))
    results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    try:
        for rep in range(1, repeat + 1):
            for variant in VARIANTS:
                flush(redis_url)
                reset(session_factory=runtime.session_factory)
                seed_unpublished(database_url, n_events)
                if variant == "apply_async loop":
                    elapsed, n = apply_async_loop(app, runtime)
                else:
                    elapsed, n = relay_pass(app, runtime, n_events, batched="batched" in variant), n_events
                messages = queued(redis_url)
                if n != n_events or messages != 3 * n_events:
                    raise AssertionError(f"{variant}: {messages} messages queued for {n} events, "
                                         f"expected {3 * n_events}")
                results[variant].append({"events_per_s": n / elapsed, "messages": messages})
                print(f"[relay {rep}/{repeat}] {variant}: {n / elapsed:,.0f} events/s",
                      file=sys.stderr, flush=True)
    finally:
        engine.dispose()
        flush(redis_url)
    return results
