"""The fast path: publish an event right after its transaction commits, off the request thread.

Used where the relay cannot be woken at commit (SQLite has no NOTIFY; PUBLISH_MODE
chooses otherwise): on PostgreSQL the relay, woken by NOTIFY, publishes instead,
and the web process spends no CPU on publishing.

The request only puts the committed event on an in-memory queue and returns:
it never waits for the broker, even a slow or unreachable one. A background
thread publishes in batches and marks the rows published. Whatever it cannot
publish (broker down, process killed, queue full) stays unpublished in the
outbox, and the relay sends it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from celery import Celery

from config.settings import Settings
from outbox.db import SessionFactory
from outbox.models import OutboxEvent
from outbox.store import mark_published
from tasks.publisher import publish_events

log = logging.getLogger(__name__)

MAX_BATCH = 100


class AfterCommitPublisher:
    def __init__(self, app: Celery, session_factory: SessionFactory, *, max_pending: int = 10_000,
                 batch_max: int = 1):
        self._app = app
        self._batch_max = batch_max  # deliveries per message (tasks/publisher.py)
        self._session_factory = session_factory
        self._pending: queue.Queue[OutboxEvent] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def __call__(self, event: OutboxEvent) -> None:
        """Hand over a committed event; never blocks."""
        try:
            self._pending.put_nowait(event)
        except queue.Full:
            log.warning("fast path full; event %s left to the relay", event.id)
            return
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        # Started lazily: under gunicorn this runs after the fork, in the worker.
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="outbox-fast-path", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = [self._pending.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                self.publish(batch)
            finally:
                for _ in batch:
                    self._pending.task_done()

    def publish(self, batch: list[OutboxEvent]) -> None:
        try:
            publish_events(self._app, batch, batch_max=self._batch_max)
        except Exception as exc:
            log.warning("fast path could not publish %d event(s) (%s); the relay will",
                        len(batch), type(exc).__name__)
            return
        try:
            with self._session_factory.begin() as session:
                mark_published(session, [event.id for event in batch])
        except Exception:
            # Published but not marked: the relay publishes again, the delivery records dedupe.
            log.exception("fast path published but could not mark %d event(s)", len(batch))

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything handed over has been attempted (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._pending.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def default_publisher(app: Celery, session_factory: SessionFactory,
                      settings: Settings) -> AfterCommitPublisher | None:
    """The fast path when `settings` want it (PUBLISH_MODE; auto: SQLite only), else None:
    on PostgreSQL the commit's NOTIFY wakes the relay, which publishes from its own process."""
    if not settings.uses_fast_path:
        return None
    return AfterCommitPublisher(app, session_factory, batch_max=settings.delivery_batch_max)
