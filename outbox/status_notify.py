"""Live delivery states over PostgreSQL NOTIFY: the status feed when the broker is RabbitMQ.

One channel for every delivery (`orderflow_deliveries`, the event id is in the
payload), so that a stream server LISTENs once whatever the number of streams
(live/feed.py), as it PSUBSCRIBEs once on Redis. A NOTIFY reaches every session
LISTENing when it commits; each announce is its own autocommit statement, so it
never rides in (or delays) the delivery's transaction. A payload is at most
8000 bytes: a status is far smaller.
"""

from __future__ import annotations

import contextlib
import threading

import psycopg
from sqlalchemy.engine import make_url

CHANNEL = "orderflow_deliveries"
CONNECT_TIMEOUT_SECONDS = 2

_connections: dict[str, psycopg.Connection] = {}
_lock = threading.Lock()


def conninfo(database_url: str) -> str:
    """SQLAlchemy's URL (postgresql+psycopg://...) as a libpq one."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def notify(database_url: str, payloads: list[str]) -> None:
    """NOTIFY each payload; raises on a database error (the caller logs it)."""
    with _lock:  # one connection per URL and process, shared by the worker's threads
        conn = _connections.get(database_url)
        if conn is None or conn.closed:
            conn = _connections[database_url] = psycopg.connect(
                conninfo(database_url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            with conn.pipeline():
                for payload in payloads:
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
        except psycopg.Error:
            _connections.pop(database_url, None)
            with contextlib.suppress(psycopg.Error):
                conn.close()
            raise
