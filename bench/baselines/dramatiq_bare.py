"""Bare Dramatiq baseline: default middleware, RedisBroker, one worker
process per queue, no-op actors that only INCR a Redis counter."""

from __future__ import annotations

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from bench.baselines import QUEUES
from bench.common import COUNTER_KEY, WorkerSet, flush, measure, python_m, wait_for

WORKER_SPEC = "bench.baselines.dramatiq_worker:broker"
READY_KEY = "bench:dramatiq:ready"


def create_broker(redis_url: str) -> tuple[RedisBroker, list[dramatiq.Actor]]:
    """Broker plus one no-op actor per queue. Actors are bound to this broker
    explicitly so the global default broker (localhost:6379) is never touched.
    Dramatiq's default encoder is JSON already."""
    broker = RedisBroker(url=redis_url)
    actors = []
    for q in QUEUES:

        def noop(event_id: int) -> None:
            broker.client.incr(COUNTER_KEY)

        actors.append(dramatiq.actor(noop, actor_name=f"noop_{q}", queue_name=q, broker=broker))
    return broker, actors


class ReadyMarker(dramatiq.Middleware):
    """Dramatiq has no ping: once a worker's consumers are running, it adds
    its name to a Redis set that the harness polls."""

    def __init__(self, name: str):
        self.name = name

    def after_worker_boot(self, broker, worker):
        broker.client.sadd(READY_KEY, self.name)


def _start_workers(workers: WorkerSet, redis_url: str, threads: int) -> None:
    for q in QUEUES:
        argv = python_m(
            "dramatiq", WORKER_SPEC, "-Q", q, "--processes", "1", "--threads", str(threads)
        )
        workers.spawn(q, argv, {"BENCH_REDIS_URL": redis_url, "BENCH_WORKER_NAME": q})

    client = redis.Redis.from_url(redis_url)

    def all_ready() -> bool:
        workers.check_alive()
        return client.scard(READY_KEY) == len(QUEUES)

    try:
        wait_for(all_ready, 90, "dramatiq workers to boot", interval=0.05)
    finally:
        client.close()


def run_once(redis_url: str, n_events: int = 2000, threads: int = 1) -> dict:
    """Publish n_events x len(QUEUES) no-op messages and time their execution.

    `redis_url` must be a disposable benchmark Redis: it is flushed first."""
    flush(redis_url)
    broker, actors = create_broker(redis_url)
    workers = WorkerSet()
    try:
        _start_workers(workers, redis_url, threads)

        def publish() -> int:
            n = 0
            for i in range(n_events):
                for actor in actors:  # one message per queue per event
                    actor.send(i)
                    n += 1
            return n

        return measure(redis_url, workers, publish, n_events * len(QUEUES))
    finally:
        workers.stop()
        broker.close()
