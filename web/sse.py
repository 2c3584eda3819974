"""The Server-Sent Events stream of an order's delivery statuses.

Order of operations matters: subscribe to the events' pub/sub channels FIRST,
then read the current state from the database. A change committed in between
arrives on the channel (and is dropped as a duplicate if the read already saw
it); reading first would lose it. Channel messages only move a delivery forward —
one older than what was already sent is skipped — so the client sees each
delivery's states in order: pending, running, retrying (attempt n), ...,
succeeded | dead. A database read is never older than a message already sent
(a state is announced after it commits), so what it shows is sent as is: that
is how an operator's replay of a dead letter (back to pending) shows up.

Pub/sub is a hint, the database is the truth: the state is read again at every
keep-alive, and every second while Redis is unreachable, so a lost message
delays an update but never hangs the stream. The stream ends with an `end`
event once every delivery is final.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from redis.client import PubSub

from outbox import status_feed
from outbox.states import FINAL_STATES

log = logging.getLogger(__name__)

Status = dict[str, Any]
Snapshot = Callable[[], list[Status]]

RANK = {"pending": 0, "running": 1, "retrying": 2, "succeeded": 3, "dead": 3, "discarded": 4}
POLL_SECONDS_WITHOUT_REDIS = 1.0


def delivery_stream(*, redis_url: str, event_ids: list[str], snapshot: Snapshot,
                    keepalive_seconds: float) -> Iterator[str]:
    pubsub = _subscribe(redis_url, event_ids)
    try:
        sent: dict[tuple[str, str], Status] = {}
        yield from _forward(snapshot(), sent, from_database=True)
        last_write = last_read = time.monotonic()
        while not _all_final(sent):
            wait = min(keepalive_seconds, 1.0)
            message, pubsub = _next(pubsub, wait)
            if message is not None:
                for chunk in _forward([message], sent):
                    last_write = time.monotonic()
                    yield chunk
            now = time.monotonic()
            reread_every = keepalive_seconds if pubsub is not None else POLL_SECONDS_WITHOUT_REDIS
            if now - last_read >= reread_every:
                last_read = now
                for chunk in _forward(snapshot(), sent, from_database=True):
                    last_write = now
                    yield chunk
            if now - last_write >= keepalive_seconds:
                last_write = now
                yield ": keep-alive\n\n"
        yield f"event: end\ndata: {json.dumps({'final': True})}\n\n"
    finally:
        if pubsub is not None:
            pubsub.close()


def format_event(status: Status) -> str:
    return f"data: {json.dumps(status)}\n\n"


def _forward(statuses: list[Status], sent: dict[tuple[str, str], Status], *,
             from_database: bool = False) -> Iterator[str]:
    """Yield the statuses that change what the client saw, and remember them.

    From the channel: only a step forward. From the database: any difference.
    """
    for status in statuses:
        key = (status["event_id"], status["consumer"])
        previous = sent.get(key)
        if previous is not None:
            if from_database and _progress(status) == _progress(previous):
                continue
            if not from_database and _progress(status) <= _progress(previous):
                continue
        sent[key] = status
        yield format_event(status)


def _progress(status: Status) -> tuple[int, int]:
    return (int(status.get("attempts") or 0), RANK.get(status["state"], 0))


def _all_final(sent: dict[tuple[str, str], Status]) -> bool:
    return all(s["state"] in FINAL_STATES for s in sent.values())


def _subscribe(redis_url: str, event_ids: list[str]) -> PubSub | None:
    try:
        # Redis pub/sub, or PostgreSQL LISTEN with RabbitMQ; none (raises) with RabbitMQ + SQLite.
        return status_feed.subscribe(redis_url, event_ids)  # type: ignore[no-any-return]
    except LookupError:  # no feed by configuration: polling is the plan, not a problem
        return None
    except Exception as exc:  # no live updates: fall back to reading the database
        log.warning("live updates unavailable (%s); polling the database", type(exc).__name__)
        return None


def _next(pubsub: PubSub | None, wait: float) -> tuple[Status | None, PubSub | None]:
    """The next status from the channel, if one comes within `wait` seconds."""
    if pubsub is None:
        time.sleep(wait)
        return None, None
    try:
        message = pubsub.get_message(timeout=wait)
    except Exception as exc:
        log.warning("live updates lost (%s); polling the database", type(exc).__name__)
        pubsub.close()
        return None, None
    if not message or message.get("type") != "message":
        return None, pubsub
    try:
        data = json.loads(message["data"])
        return status_feed.status_message(**{k: data[k] for k in
                                      ("event_id", "consumer", "state", "attempts", "last_error")}), pubsub
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed live message: %r", message.get("data"))
        return None, pubsub
