"""What the tasks need at run time (settings, database), built on first use.

Nothing is read at import time: `configure()` lets tests and embedding
projects hand in their own settings before the first task runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from config.settings import Settings
from outbox import tracing
from outbox.db import SessionFactory, make_engine, make_session_factory
from outbox.subscriptions import Subscriber, subscriber_for


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    session_factory: SessionFactory
    # Session factories of the other services' databases (shipping), made on first use.
    _others: dict[str, SessionFactory] = field(default_factory=dict, compare=False, repr=False)

    def sessions(self, service: str) -> SessionFactory:
        """The session factory of `service`'s database (its outbox, its delivery records)."""
        url = self.settings.database_url_for(service)
        if url == self.settings.database_url:
            return self.session_factory
        with _lock:
            found = self._others.get(url)
            if found is None:
                found = self._others[url] = make_session_factory(make_engine(url, pre_ping=False))
        return found

    def sessions_of(self, consumer: str) -> SessionFactory:
        """Where `consumer` records its deliveries and runs its effects: its service's database."""
        subscriber = subscriber_for(consumer)
        return self.sessions(subscriber.service) if subscriber is not None else self.session_factory

    def records_of(self, subscriber: Subscriber) -> SessionFactory:
        """The database where `subscriber` keeps its delivery records (its service's)."""
        return self.sessions(subscriber.service)

    def dispose(self) -> None:
        self.session_factory.kw["bind"].dispose()
        for factory in self._others.values():
            factory.kw["bind"].dispose()


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
        previous.dispose()
    return runtime


def change_settings(settings: Settings) -> Runtime:
    """Run with other settings on the same database connections (same database URL)."""
    global _current
    with _lock:
        current_runtime = _current or configure(settings)
        if settings.database_url != current_runtime.settings.database_url:
            raise ValueError("change_settings keeps the database: use configure() for another one")
        _current = Runtime(settings, current_runtime.session_factory, current_runtime._others)
        return _current


def current() -> Runtime:
    runtime = _current
    if runtime is None:
        with _lock:
            runtime = _current
        if runtime is None:
            return configure()
    return runtime
