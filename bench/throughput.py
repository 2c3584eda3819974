"""Pipeline throughput, monitoring cost and scale-out, interleaved with the baselines.

Each repetition runs, in this order, against one private Redis and one
PostgreSQL database: bare Celery (defaults, prefork, no-op tasks), the same with
orderflow's safety settings (late acks, reject on worker lost, prefetch 1, task
events), Dramatiq
(no-op actors), orderflow as the Procfile runs it (task events on, Flower
connected), then on a smaller order count orderflow with task events off (no
Flower) and orderflow with 1, 2 and 4 worker processes per queue (events on).
Every variant is started fresh and torn down.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from bench import pipeline
from bench.baselines import celery_bare, dramatiq_bare
from bench.services import Sink

SCALE_OUT = (1, 2, 4)
BARE_CELERY, DRAMATIQ = "bare Celery (defaults)", "Dramatiq"
SAFE_CELERY = "bare Celery, orderflow's safety settings"
ORDERFLOW = "orderflow (events on, Flower)"
EVENTS_OFF = "orderflow (events off)"


def scale_name(n: int) -> str:
    return f"orderflow x{n} per queue"


def variants(redis_url: str, database_url: str, sink: Sink, *, n_orders: int, scale_orders: int,
             dramatiq_threads: int) -> dict[str, Callable[[], dict]]:
    """The baselines and orderflow at `n_orders`; scale-out and events off at `scale_orders`
    (smaller, to fit the time budget; compared only with each other)."""
    run = functools.partial(pipeline.run_once, redis_url, database_url, sink)
    todo: dict[str, Callable[[], dict]] = {
        BARE_CELERY: functools.partial(celery_bare.run_once, redis_url, n_events=n_orders),
        SAFE_CELERY: functools.partial(celery_bare.run_once, redis_url, n_events=n_orders, safe=True),
        DRAMATIQ: functools.partial(dramatiq_bare.run_once, redis_url, n_events=n_orders,
                                    threads=dramatiq_threads),
        ORDERFLOW: functools.partial(run, n_orders=n_orders, events=True),
        EVENTS_OFF: functools.partial(run, n_orders=scale_orders, events=False),
    }
    for n in SCALE_OUT:
        todo[scale_name(n)] = functools.partial(run, n_orders=scale_orders, per_queue=n)
    return todo


def run(redis_url: str, database_url: str, sink: Sink, *, n_orders: int = 2000, scale_orders: int = 1000,
        repeat: int = 3, dramatiq_threads: int = 1) -> dict[str, list[dict]]:
    todo = variants(redis_url, database_url, sink, n_orders=n_orders, scale_orders=scale_orders,
                    dramatiq_threads=dramatiq_threads)
    results: dict[str, list[dict]] = {name: [] for name in todo}
    for rep in range(1, repeat + 1):
        for name, once in todo.items():
            r = once()
            results[name].append(r)
            print(f"[throughput {rep}/{repeat}] {name}: {r['executions_per_s']:,.0f} executions/s, "
                  f"worker CPU {r['cpu_ms_per_execution']:.2f} ms/execution", file=sys.stderr, flush=True)
    return results
