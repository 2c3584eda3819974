"""How the relay waits between two drains: for a NOTIFY on PostgreSQL, a plain sleep elsewhere.

Every transaction that writes to the outbox also runs `NOTIFY orderflow_outbox`
(outbox/store.py), delivered on commit. The relay LISTENs on its own autocommit
psycopg connection and wakes as soon as one arrives, instead of sleeping its
poll interval. The poll stays the safety net: if the LISTEN connection breaks,
the relay sleeps-and-polls as before and reconnects a little later, so an event
is at worst as late as without NOTIFY, never lost.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Protocol

import psycopg
from sqlalchemy.engine import make_url

from config.settings import is_postgresql
from outbox.store import RELAY_CHANNEL

log = logging.getLogger(__name__)

# Longest single blocking wait, so a stop request (SIGTERM) is seen this fast.
STOP_CHECK_SECONDS = 1.0
RECONNECT_AFTER_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 5


class Wakeup(Protocol):
    def wait(self, timeout: float) -> None: ...

    def close(self) -> None: ...


class Sleep:
    """SQLite (no NOTIFY): poll every `timeout` seconds."""

    def __init__(self, stop: threading.Event):
        self._stop = stop

    def wait(self, timeout: float) -> None:
        self._stop.wait(timeout)

    def close(self) -> None:
        pass


class Listen:
    """PostgreSQL: return as soon as a NOTIFY arrives, or after `timeout` at the latest."""

    def __init__(self, database_url: str, stop: threading.Event):
        # SQLAlchemy's URL (postgresql+psycopg://...) as a libpq one (keeps ?sslmode=... etc.).
        self._conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._stop = stop
        self._conn: psycopg.Connection | None = None
        self._retry_at = 0.0
        self._connect()  # before the first drain: nothing committed after it goes unnoticed

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._conn is None:
                if time.monotonic() >= self._retry_at and self._connect():
                    return  # listening again: drain what was committed while deaf
                self._stop.wait(min(remaining, STOP_CHECK_SECONDS))
                continue
            try:
                woken = list(self._conn.notifies(timeout=min(remaining, STOP_CHECK_SECONDS),
                                                 stop_after=1))
                if woken:
                    # The drain takes everything pending: swallow the wake-ups already queued.
                    list(self._conn.notifies(timeout=0))
                    return
            except psycopg.Error as exc:
                log.warning("relay: LISTEN connection lost (%s); polling until it is back",
                            type(exc).__name__)
                self._drop()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def _connect(self) -> bool:
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True,
                                   connect_timeout=CONNECT_TIMEOUT_SECONDS)
            conn.execute(f"LISTEN {RELAY_CHANNEL}")
        except psycopg.Error as exc:
            log.warning("relay: cannot LISTEN (%s); polling, retrying in %.0fs",
                        type(exc).__name__, RECONNECT_AFTER_SECONDS)
            self._retry_at = time.monotonic() + RECONNECT_AFTER_SECONDS
            return False
        self._conn = conn
        log.info("relay: listening for %s (connection pid %s)", RELAY_CHANNEL, conn.info.backend_pid)
        return True

    def _drop(self) -> None:
        self.close()
        self._retry_at = time.monotonic() + RECONNECT_AFTER_SECONDS


def wakeup_for(database_url: str, stop: threading.Event) -> Wakeup:
    return Listen(database_url, stop) if is_postgresql(database_url) else Sleep(stop)
