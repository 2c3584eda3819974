"""Live delivery states over PostgreSQL NOTIFY: the status feed when the broker is RabbitMQ.

One channel per event (its name quoted: it holds ':'), as on Redis. A NOTIFY is
delivered on commit to every session LISTENing on its channel; each announce is
its own autocommit statement, so it never rides in (or delays) the delivery's
transaction. A NOTIFY payload is at most 8000 bytes: a status is far smaller.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

CONNECT_TIMEOUT_SECONDS = 2

_connections: dict[str, psycopg.Connection] = {}
_lock = threading.Lock()


def conninfo(database_url: str) -> str:
    """SQLAlchemy's URL (postgresql+psycopg://...) as a libpq one."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def notify(database_url: str, notes: list[tuple[str, str]]) -> None:
    """NOTIFY each (channel, payload); raises on a database error (the caller logs it)."""
    with _lock:  # one connection per URL and process, shared by the worker's threads
        conn = _connections.get(database_url)
        if conn is None or conn.closed:
            conn = _connections[database_url] = psycopg.connect(
                conninfo(database_url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            with conn.pipeline():
                for channel, payload in notes:
                    conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))
        except psycopg.Error:
            _connections.pop(database_url, None)
            with contextlib.suppress(psycopg.Error):
                conn.close()
            raise


class Listener:
    """LISTEN on some channels; the same two calls the SSE stream makes on a Redis PubSub."""

    def __init__(self, database_url: str, channels: list[str]):
        self._conn = psycopg.connect(conninfo(database_url), autocommit=True,
                                     connect_timeout=CONNECT_TIMEOUT_SECONDS)
        for channel in channels:
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def get_message(self, timeout: float = 0.0) -> dict[str, Any] | None:
        for note in self._conn.notifies(timeout=timeout, stop_after=1):
            return {"type": "message", "channel": note.channel, "data": note.payload}
        return None

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._conn.close()
