"""The republisher: sends again the deliveries that should have happened by now.

It runs inside the relay process (`python -m tasks.relay`), next to the relay
loop. The relay covers events that were never published; the reconciler covers
messages that were published and then lost (Redis restarted without
persistence, a worker host died holding the message: on Redis it would come
back only after the visibility timeout; on RabbitMQ it comes back when the
connection closes, and the reconciler is the net for a broker that lost it). See `outbox/reconcile.py`
for what counts as overdue. Republishing is harmless: the task id is the same
and the delivery record makes a second copy a no-op.

The deadline (`RECONCILE_AFTER_SECONDS`, default 600 s) must exceed every
retry backoff cap plus the task time limit, or the reconciler would republish
deliveries that are merely waiting for their next retry; the relay refuses to
start otherwise. The rule is the same on both brokers: it depends only on the
retry policies, the time limit and the lease (a countdown on a quorum queue is
at most one second longer: whole seconds, tasks/delays.py).
"""

from __future__ import annotations

import logging
import threading

from celery import Celery

from config.settings import ORDERS
from outbox.reconcile import find_overdue, mark_republished
from outbox.subscriptions import all_consumers, policy_for
from tasks.publisher import publish_deliveries
from tasks.runtime import Runtime

log = logging.getLogger(__name__)


def reconcile_once(app: Celery, runtime: Runtime, *, service: str = ORDERS) -> int:
    """Republish one batch of overdue deliveries of `service`'s events; returns how many went out."""
    settings = runtime.settings
    sessions = runtime.sessions(service)
    overdue = find_overdue(
        sessions, after_seconds=settings.reconcile_after_seconds,
        horizon_seconds=settings.reconcile_horizon_seconds, limit=settings.relay_batch_size,
        records_of=runtime.records_of,
    )
    if not overdue:
        return 0
    publish_deliveries(app, ((o.event_id, o.payload, o.subscriber) for o in overdue))
    mark_republished(sessions, overdue, after_seconds=settings.reconcile_after_seconds,
                     records_of=runtime.records_of)
    log.warning("reconciler republished %d overdue deliveries: %s", len(overdue), ", ".join(
        f"event={o.event_id} consumer={o.subscriber.consumer} was={o.state}" for o in overdue[:5]))
    return len(overdue)


def run(app: Celery, runtime: Runtime, stop: threading.Event, service: str = ORDERS) -> None:
    """Loop until `stop` is set; errors (broker or database away) are logged and retried."""
    log.info("reconciler started: republishes deliveries not final %gs after publishing",
             runtime.settings.reconcile_after_seconds)
    while not stop.is_set():
        try:
            reconcile_once(app, runtime, service=service)
        except Exception as exc:
            log.warning("reconciler pass failed (%s); trying again later", type(exc).__name__)
        stop.wait(runtime.settings.reconcile_poll_seconds)


def deadline_problems(app: Celery, runtime: Runtime) -> list[str]:
    """The deadline must outlast the longest legitimate wait of any delivery."""
    deadline = runtime.settings.reconcile_after_seconds
    time_limit = app.conf.get("task_time_limit") or 0
    lease = runtime.settings.lease_seconds
    overrides = runtime.settings.retry_policies
    longest = max([lease] + [policy_for(c, overrides).backoff_max + time_limit for c in all_consumers()])
    if deadline <= longest:
        return [f"RECONCILE_AFTER_SECONDS {deadline:g} must exceed the longest legitimate wait of a "
                f"delivery ({longest:g}s: backoff cap + task_time_limit, or the lease), or the "
                "reconciler republishes deliveries that are only waiting for their retry"]
    return []
