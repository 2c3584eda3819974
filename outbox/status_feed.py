"""Live delivery status: every state change of a delivery, published on Redis pub/sub
(with a Redis broker) or PostgreSQL NOTIFY (with RabbitMQ: no Redis needed).

The consumer tasks call `announce(...)` right after recording a state in the
database; the stream server (live/) relays it as Server-Sent Events. Pub/sub
stores nothing: a listener that is not subscribed misses the message, which is
why the stream reads the database state after subscribing.
Announcing is best effort: it never raises, so a Redis hiccup can never fail
or retry a delivery (the record in the database stays the truth).

The feed URL (`Settings.status_feed_url`) says where: `redis://...` (pub/sub),
`postgresql...` (NOTIFY on one channel, outbox/status_notify.py, heard by
live/feed.py's PostgresNotifyFeed), or "" (none: RabbitMQ with SQLite;
announcing does nothing and the streams read the database every second).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis

from config.settings import is_postgresql
from outbox import status_notify
from outbox.clock import utcnow

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "orderflow:deliveries:"
# Every event's channel: what a listener that serves many orders subscribes to, once.
CHANNEL_PATTERN = f"{CHANNEL_PREFIX}*"

_clients: dict[str, redis.Redis] = {}
_subscribers: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def channel_for(event_id: str) -> str:
    """One channel per event: a stream subscribes to the events of its order."""
    return f"{CHANNEL_PREFIX}{event_id}"


def status_message(*, event_id: str, consumer: str, state: str, attempts: int,
                   last_error: str | None) -> dict[str, Any]:
    """The one shape of a delivery status, on the channel and in the SSE stream."""
    return {"event_id": event_id, "consumer": consumer, "state": state, "attempts": attempts,
            "last_error": last_error}


def parse(data: bytes | str) -> dict[str, Any] | None:
    """A status from a channel message; None (and a warning) when it is not one."""
    try:
        found = json.loads(data)
        return status_message(**{k: found[k] for k in
                                 ("event_id", "consumer", "state", "attempts", "last_error")})
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed live message: %r", data)
        return None


def announce(redis_url: str, *, event_id: str, consumer: str, state: str, attempts: int,
             last_error: str | None = None) -> bool:
    """Publish one state change; False (and a warning) if Redis did not take it."""
    return announce_many(redis_url, [status_message(event_id=event_id, consumer=consumer, state=state,
                                                    attempts=attempts, last_error=last_error)])


def announce_many(redis_url: str, messages: list[dict[str, Any]]) -> bool:
    """Publish several state changes in one round trip (a batch of deliveries); never raises."""
    at = utcnow().isoformat()
    if not redis_url:
        return False  # no feed configured: listeners poll the database
    try:
        if is_postgresql(redis_url):
            status_notify.notify(redis_url, [json.dumps({**m, "at": at}) for m in messages])
            return True
        pipeline = client(redis_url).pipeline(transaction=False)
        for message in messages:
            pipeline.publish(channel_for(message["event_id"]), json.dumps({**message, "at": at}))
        pipeline.execute()
    except Exception as exc:  # best effort by design: see the module docstring
        first = messages[0] if messages else {}
        log.warning("%d state change(s) not announced, first event=%s consumer=%s state=%s: %s",
                    len(messages), first.get("event_id"), first.get("consumer"), first.get("state"),
                    type(exc).__name__)
        return False
    return True


def client(redis_url: str) -> redis.Redis:
    """One client (and connection pool) per URL, with short timeouts."""
    with _clients_lock:
        found = _clients.get(redis_url)
        if found is None:
            found = _clients[redis_url] = redis.Redis.from_url(
                redis_url, socket_connect_timeout=1, socket_timeout=1)
        return found


def subscriber(redis_url: str) -> redis.Redis:
    """A client for listening: no read timeout (a quiet channel is normal), a short connect one.

    Each pub/sub subscription holds one connection of its pool while it lasts.
    """
    with _clients_lock:
        found = _subscribers.get(redis_url)
        if found is None:
            found = _subscribers[redis_url] = redis.Redis.from_url(
                redis_url, socket_connect_timeout=1, socket_keepalive=True)
        return found

