"""The pruner: removes finished outbox rows and delivery records older than the retention.

It runs inside the relay process (`python -m tasks.relay`), next to the relay and
the reconciler, every `ORDERFLOW_PRUNE_INTERVAL` (default 1 h). What it removes and
why that is safe: outbox/retention.py.

Why here and not a Celery beat entry: beat is one more process that must run
exactly once (two beats prune twice as often, none never prunes), while the relay
already runs wherever the outbox does. Several relays may prune at once on
PostgreSQL: each batch takes its events with SKIP LOCKED. And a prune pass in a
worker would hold a delivery slot and count against the task time limits meant
for deliveries; here it only shares a process with loops that mostly wait.
"""

from __future__ import annotations

import logging
import threading

from config.settings import ORDERS
from outbox.retention import prune
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

# One pass stops after this long even with more to do; the next pass goes on.
MAX_PASS_SECONDS = 300.0


def prune_once(runtime: Runtime, stop: threading.Event | None = None, *, service: str = ORDERS) -> int:
    """One pass over `service`'s database; returns how many events went (with their records)."""
    settings = runtime.settings
    done = prune(runtime.sessions(service), retention_seconds=settings.retention_seconds,
                 records_of=runtime.records_of,
                 batch_size=settings.prune_batch_size, max_seconds=MAX_PASS_SECONDS,
                 stop=stop.is_set if stop else lambda: False)
    if done.events:
        log.info("pruner: %s", done.describe())
    return done.events


def run(runtime: Runtime, stop: threading.Event, service: str = ORDERS) -> None:
    """Loop until `stop` is set; a failed pass (database away) is logged and tried next time."""
    log.info("pruner started: removes finished events older than %gs every %gs",
             runtime.settings.retention_seconds, runtime.settings.prune_interval_seconds)
    while not stop.is_set():
        try:
            prune_once(runtime, stop, service=service)
        except Exception as exc:
            log.warning("pruner pass failed (%s); trying again later", type(exc).__name__)
        stop.wait(runtime.settings.prune_interval_seconds)
