"""Where the stream server hears about delivery updates: one subscription per process.

`UpdateFeed` is the one thing the hub needs from a transport: call `on_update`
with each status, and `on_state(True/False)` when the subscription is live or
lost (while it is lost the streams read the database every second). Today the
delivery tasks announce on Redis pub/sub (`outbox/status_feed.py`), so the feed
is one pattern subscription to `orderflow:deliveries:*`. With RabbitMQ (no
Redis at all) they NOTIFY on PostgreSQL and the feed is one LISTEN
(`PostgresNotifyFeed`); with RabbitMQ and SQLite there is no feed (`NoFeed`):
the streams read the database every second. `feed_for` picks by
`Settings.status_feed_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

import psycopg
import redis.asyncio as aioredis

from config.settings import is_postgresql, mask_url
from outbox import status_feed, status_notify

log = logging.getLogger(__name__)

OnUpdate = Callable[[dict[str, Any]], None]
OnState = Callable[[bool], None]

RECONNECT_SECONDS = (0.5, 1.0, 2.0, 5.0)
LIVE = object()  # what a feed's listen() yields once it is subscribed


class UpdateFeed(Protocol):
    async def run(self, on_update: OnUpdate, on_state: OnState) -> None:
        """Deliver updates until cancelled, reconnecting by itself."""


class RedisPatternFeed:
    """One `PSUBSCRIBE orderflow:deliveries:*` connection, whatever the number of streams."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url

    async def run(self, on_update: OnUpdate, on_state: OnState) -> None:
        await keep_listening(self._listen, on_update, on_state)

    async def _listen(self) -> AsyncGenerator[Any, None]:
        client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=1, socket_keepalive=True)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(status_feed.CHANNEL_PATTERN)
            log.info("listening to %s on %s", status_feed.CHANNEL_PATTERN, mask_url(self.redis_url))
            yield LIVE
            async for message in pubsub.listen():
                if message.get("type") == "pmessage":
                    yield message["data"]
        finally:
            # Closing a broken connection may fail too; nothing is left to do then.
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await client.aclose()


class PostgresNotifyFeed:
    """One `LISTEN orderflow_deliveries` connection (outbox/status_notify.py)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    async def run(self, on_update: OnUpdate, on_state: OnState) -> None:
        await keep_listening(self._listen, on_update, on_state)

    async def _listen(self) -> AsyncGenerator[Any, None]:
        conn = await psycopg.AsyncConnection.connect(
            status_notify.conninfo(self.database_url), autocommit=True,
            connect_timeout=status_notify.CONNECT_TIMEOUT_SECONDS)
        try:
            await conn.execute(f"LISTEN {status_notify.CHANNEL}")
            log.info("listening to %s on %s", status_notify.CHANNEL, mask_url(self.database_url))
            yield LIVE
            async for note in conn.notifies():
                yield note.payload
        finally:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                await conn.close()


async def keep_listening(listen: Callable[[], AsyncGenerator[Any, None]], on_update: OnUpdate,
                         on_state: OnState) -> None:
    """Run `listen()` forever, reconnecting with a growing pause.

    `listen()` yields `LIVE` once its subscription is in place, then each raw
    announcement; while it is down the streams read the database every second.
    """
    failures = 0
    while True:
        try:
            async with contextlib.aclosing(listen()) as heard:
                async for raw in heard:
                    if raw is LIVE:
                        failures = 0
                        on_state(True)
                        continue
                    status = status_feed.parse(raw)
                    if status is not None:
                        on_update(status)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # lost or refused: the streams poll the database meanwhile
            log.warning("live updates unavailable (%s); reading the database every second",
                        type(exc).__name__)
        finally:
            on_state(False)
        await asyncio.sleep(RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)])
        failures += 1


class NoFeed:
    """RabbitMQ with SQLite: nothing announces; the streams read the database every second."""

    async def run(self, on_update: OnUpdate, on_state: OnState) -> None:
        on_state(False)
        await asyncio.Event().wait()  # until cancelled


def feed_for(feed_url: str) -> UpdateFeed:
    """The feed that hears what the delivery tasks announce (Settings.status_feed_url)."""
    if not feed_url:
        return NoFeed()
    if is_postgresql(feed_url):
        return PostgresNotifyFeed(feed_url)
    return RedisPatternFeed(feed_url)
