"""The outbox relay: publishes every committed event the fast path did not.

Run it as its own process (`python -m tasks.relay`, the Procfile's `relay`).
On PostgreSQL it is the publisher: each commit NOTIFYs it (outbox/wakeup.py)
and it publishes at once. Everywhere it is the safety net for a crash between
commit and publish, and for a broker outage: events wait in the outbox and go
out when Redis is back. Several relays may run at once on PostgreSQL: each
claims rows with SKIP LOCKED.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from celery import Celery

from config.settings import ORDERS, SHIPPING, mask_url
from outbox.store import claim_unpublished, mark_published
from outbox.subscriptions import durable_subscribers
from outbox.wakeup import Wakeup, wakeup_for
from tasks.backlog import consumers_behind
from tasks.publisher import publish_events
from tasks.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ERROR_BACKOFF_SECONDS = 10.0


def relay_once(app: Celery, runtime: Runtime, *, grace_seconds: float | None = None,
               service: str = ORDERS) -> int:
    """Publish one batch of `service`'s unpublished events; returns how many went out.

    The rows stay locked while publishing, so a concurrent relay skips them;
    if publishing fails the transaction rolls back and nothing is marked.
    """
    settings = runtime.settings
    grace = settings.effective_relay_grace_seconds if grace_seconds is None else grace_seconds
    with runtime.sessions(service).begin() as session:
        events = claim_unpublished(session, older_than_seconds=grace, limit=settings.relay_batch_size)
        if not events:
            return 0
        publish_events(app, events, batch_max=settings.delivery_batch_max)
        mark_published(session, [event.id for event in events])
    log.info("relay published %d event(s): %s", len(events), ", ".join(e.id for e in events[:5]))
    return len(events)


def run(app: Celery, runtime: Runtime, stop: threading.Event, service: str = ORDERS) -> None:
    """Loop until `stop` is set: drain full batches at once, wait for a NOTIFY (or the
    poll interval) when idle, back off on errors."""
    database_url = runtime.settings.database_url_for(service)
    log.info("relay started: service=%s database=%s broker=%s grace=%.1fs", service,
             mask_url(database_url), mask_url(app.conf.broker_url),
             runtime.settings.effective_relay_grace_seconds)
    wakeup = wakeup_for(database_url, stop)
    try:
        _loop(app, runtime, stop, wakeup, service)
    finally:
        wakeup.close()


def _loop(app: Celery, runtime: Runtime, stop: threading.Event, wakeup: Wakeup,
          service: str = ORDERS) -> None:
    failures = 0
    linger = runtime.settings.relay_linger_seconds
    queues = [subscriber.queue for subscriber in durable_subscribers()]
    while not stop.is_set():
        try:
            published = relay_once(app, runtime, service=service)
            failures = 0
        except Exception as exc:  # broker or database away: keep the events, try later
            failures += 1
            wait = min(MAX_ERROR_BACKOFF_SECONDS, 0.5 * 2 ** min(failures, 6))
            log.warning("relay could not publish (%s: %s); retrying in %.1fs",
                        type(exc).__name__, _mask(str(exc), app), wait)
            stop.wait(wait)
            continue
        if published >= runtime.settings.relay_batch_size:
            continue  # a full batch: more is waiting, drain it now
        if published and linger > 0 and consumers_behind(app.conf.broker_url, queues):
            # The workers are behind: let the events committed meanwhile pile up, so that
            # the next pass sends them together (fewer, fuller messages: tasks/backlog.py).
            # Then drain again without waiting for a NOTIFY; an idle pass goes back to waiting.
            stop.wait(linger)
            continue
        wakeup.wait(runtime.settings.relay_poll_seconds)


def _mask(text: str, app: Celery) -> str:
    url = app.conf.broker_url or ""
    return text.replace(url, mask_url(url)) if url else text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tasks.relay",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--service", default=ORDERS, choices=(ORDERS, SHIPPING),
                        help="whose outbox to publish: orders (DATABASE_URL, the default) or shipping "
                             "(SHIPPING_DATABASE_URL)")
    service = parser.parse_args(argv).service
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # `tasks` registers the consumer tasks: messages name real ones
    from tasks import app, pruner, republisher
    from tasks import runtime as runtime_module
    from tasks.safety import UnsafeSettings, check_or_exit

    runtime = runtime_module.configure(check_or_exit(app))
    found = republisher.deadline_problems(app, runtime)
    if found:
        raise UnsafeSettings("orderflow: refusing to start: " + "; ".join(found))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # Both loops in one process: the relay sends what was never published, the
    # reconciler what was published and then lost.
    reconciling = threading.Thread(target=republisher.run, args=(app, runtime, stop, service),
                                   name="reconciler", daemon=True)
    reconciling.start()
    # A third loop: finished events older than the retention leave (tasks/pruner.py says why here).
    pruning = threading.Thread(target=pruner.run, args=(runtime, stop, service), name="pruner", daemon=True)
    pruning.start()
    run(app, runtime, stop, service)
    reconciling.join(timeout=10)
    pruning.join(timeout=10)
    log.info("relay stopped")


if __name__ == "__main__":
    main()
