"""Bare Celery baseline: default settings, prefork pool, concurrency 1,
one worker process per queue, no-op tasks that only INCR a Redis counter.

The broker is that Redis, or another (`broker_url`: RabbitMQ for the RabbitMQ section);
the counter stays in Redis, as a measuring device."""

from __future__ import annotations

import functools
import socket

import redis
from celery import Celery

from bench.baselines import QUEUES
from bench.common import COUNTER_KEY, WorkerSet, flush, measure, python_m, wait_for

WORKER_MODULE = "bench.baselines.celery_worker"


@functools.cache
def _counter_client(url: str) -> redis.Redis:
    # One client per (forked) process; redis-py pools reconnect after fork.
    return redis.Redis.from_url(url)


# What orderflow's guarantees require of Celery (tasks/safety.py), for the variant
# that separates "the cost of safe Celery settings" from "the cost of orderflow's work".
SAFE_SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "worker_send_task_events": True,
    "task_send_sent_event": True,
}


def create_app(redis_url: str, safe: bool = False, broker_url: str | None = None) -> Celery:
    """Celery app with one no-op task per queue; everything else left default
    except the serializer, pinned to JSON (never pickle), and, with `safe`,
    orderflow's reliability settings."""
    app = Celery("bench_bare", broker=broker_url or redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_routes={f"bench.noop.{q}": {"queue": q} for q in QUEUES},
    )
    if safe:
        app.conf.update(SAFE_SETTINGS)
    for q in QUEUES:

        def noop(event_id: int) -> None:
            _counter_client(redis_url).incr(COUNTER_KEY)

        app.task(name=f"bench.noop.{q}", shared=False)(noop)
    return app


def _start_workers(workers: WorkerSet, redis_url: str, app: Celery, safe: bool = False,
                   broker_url: str | None = None) -> None:
    host = socket.gethostname()
    names = [f"{q}@{host}" for q in QUEUES]
    for q, name in zip(QUEUES, names, strict=True):
        # prefork and concurrency 1 spelled out: the default concurrency is the
        # core count, and we want exactly one executing process per queue.
        opts = ["-Q", q, "-n", name, "--pool", "prefork", "--concurrency", "1"]
        argv = python_m("celery", "-A", WORKER_MODULE, "worker", *opts, "--loglevel", "WARNING")
        workers.spawn(q, argv, {"BENCH_REDIS_URL": redis_url, "BENCH_BROKER_URL": broker_url or redis_url,
                                "BENCH_CELERY_SAFE": "1" if safe else ""})

    def all_pong() -> bool:
        workers.check_alive()
        replies = app.control.ping(destination=names, timeout=0.5, limit=len(names))
        return {n for r in replies for n in r} >= set(names)

    # Readiness = every worker answers a control ping (its consumer is up).
    wait_for(all_pong, 90, "celery workers to answer ping", interval=0.1)


def run_once(redis_url: str, n_events: int = 2000, safe: bool = False, broker_url: str | None = None) -> dict:
    """Publish n_events x len(QUEUES) no-op tasks and time their execution.

    `redis_url` must be a disposable benchmark Redis: it is flushed first (another
    `broker_url` must start empty: the caller's business)."""
    flush(redis_url)
    app = create_app(redis_url, safe=safe, broker_url=broker_url)
    tasks = [app.tasks[f"bench.noop.{q}"] for q in QUEUES]
    workers = WorkerSet()
    try:
        _start_workers(workers, redis_url, app, safe=safe, broker_url=broker_url)

        def publish() -> int:
            n = 0
            for i in range(n_events):
                for task in tasks:  # one message per queue per event
                    task.apply_async((i,))
                    n += 1
            return n

        return measure(redis_url, workers, publish, n_events * len(QUEUES))
    finally:
        workers.stop()
        app.close()
