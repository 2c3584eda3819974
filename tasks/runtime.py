"""What the tasks need at run time (settings, database), built on first use.

Nothing is read at import time: `configure()` lets tests and embedding
projects hand in their own settings before the first task runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from config.settings import Settings
from outbox import tracing
from outbox.db import SessionFactory, make_engine, make_session_factory


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    session_factory: SessionFactory


_lock = threading.Lock()
_current: Runtime | None = None


def configure(settings: Settings | None = None) -> Runtime:
    """Build (or rebuild) the runtime from `settings`, or from the environment."""
    global _current
    settings = settings or Settings.from_env()
    # No pre-ping: it is one more round trip per transaction, two per delivery (~18% of a
    # consumer task's time in a py-spy profile). A connection gone stale (database
    # restarted) fails that one attempt with a DBAPIError, SQLAlchemy drops the whole
    # pool, and the task retries through the database-down backoff: nothing is lost.
    engine = make_engine(settings.database_url, pre_ping=False)
    runtime = Runtime(settings, make_session_factory(engine))
    tracing.configure(settings.otel_endpoint, settings.otel_service_name)  # no-op when unset
    with _lock:
        previous, _current = _current, runtime
    if previous is not None:
        previous.session_factory.kw["bind"].dispose()
    return runtime


def change_settings(settings: Settings) -> Runtime:
    """Run with other settings on the same database connections (same database URL)."""
    global _current
    with _lock:
        current_runtime = _current or configure(settings)
        if settings.database_url != current_runtime.settings.database_url:
            raise ValueError("change_settings keeps the database: use configure() for another one")
        _current = Runtime(settings, current_runtime.session_factory)
        return _current


def current() -> Runtime:
    runtime = _current
    if runtime is None:
        with _lock:
            runtime = _current
        if runtime is None:
            return configure()
    return runtime
