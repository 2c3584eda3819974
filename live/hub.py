"""The streams of one process, by order: admission limits and the in-memory fan-out.

The feed hands every update to `dispatch`, which finds the order its event
belongs to and puts the update on the queue of each stream of that order;
`broadcast` does the same with the periodic database re-read. Nothing here
touches a socket, Redis or the database: a stream is a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Status = dict[str, Any]

# Updates a stream may have waiting before newer ones are dropped (a client that does
# not read); the next database re-read brings it back to the truth.
QUEUE_LIMIT = 256


class StreamsFull(Exception):
    """The process holds as many streams as it may (503)."""


class ClientFull(Exception):
    """This client address holds as many streams as it may (429)."""


@dataclass(frozen=True)
class Update:
    """What a stream's queue carries. `kind`: "channel" (one status, a hint), "database"
    (every status of the order, the truth; None when the read failed: a keep-alive tick
    only), or "closing" (the server stops: end without `end`, the client reconnects)."""

    kind: str
    statuses: list[Status] | None
    # monotonic time the update was heard (channel) or its read began (database): a
    # read that began before a channel update already sent may be older than it.
    at: float


@dataclass(eq=False)
class Watcher:
    order_id: str
    address: str
    queue: asyncio.Queue[Update] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def put(self, update: Update) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a stuck client: see QUEUE_LIMIT
            self.queue.put_nowait(update)


class Hub:
    def __init__(self, *, max_open: int, max_per_client: int) -> None:
        self.max_open = max_open
        self.max_per_client = max_per_client
        self.feed_up = False
        # Asks the server for a database re-read of every watched order now (live/server.py
        # sets it): a stream that looks finished confirms it there before it ends.
        self.reread_now: Callable[[], None] = lambda: None
        self._rooms: dict[str, set[Watcher]] = {}
        self._events: dict[str, set[str]] = {}  # order id -> its event ids, once read
        self._order_of: dict[str, str] = {}  # event id -> order id
        self._per_client: Counter[str] = Counter()
        self._open = 0

    @property
    def open_streams(self) -> int:
        return self._open

    def admit(self, order_id: str, address: str) -> Watcher:
        if self._open >= self.max_open:
            raise StreamsFull
        if self._per_client[address] >= self.max_per_client:
            raise ClientFull
        watcher = Watcher(order_id, address)
        self._rooms.setdefault(order_id, set()).add(watcher)
        self._per_client[address] += 1
        self._open += 1
        return watcher

    def leave(self, watcher: Watcher) -> None:
        room = self._rooms.get(watcher.order_id)
        if room is None or watcher not in room:
            return
        room.discard(watcher)
        self._open -= 1
        self._per_client[watcher.address] -= 1
        if self._per_client[watcher.address] <= 0:
            del self._per_client[watcher.address]
        if not room:
            del self._rooms[watcher.order_id]
            for event_id in self._events.pop(watcher.order_id, ()):
                self._order_of.pop(event_id, None)

    def knows_events_of(self, order_id: str) -> bool:
        return order_id in self._events

    def watch_events(self, order_id: str, statuses: list[Status]) -> None:
        """Route the updates of these events to the order's streams (if it still has any)."""
        if order_id not in self._rooms:
            return
        events = self._events.setdefault(order_id, set())
        for status in statuses:
            events.add(status["event_id"])
            self._order_of[status["event_id"]] = order_id

    def watched_orders(self) -> list[str]:
        return list(self._rooms)

    def dispatch(self, status: Status) -> None:
        order_id = self._order_of.get(status["event_id"])
        if order_id is None:
            return  # nobody watches this order here
        update = Update("channel", [status], time.monotonic())
        for watcher in self._rooms.get(order_id, ()):
            watcher.put(update)

    def broadcast(self, order_id: str, statuses: list[Status] | None, read_began: float) -> None:
        if statuses:
            self.watch_events(order_id, statuses)  # an order may gain events
        update = Update("database", statuses, read_began)
        for watcher in self._rooms.get(order_id, ()):
            watcher.put(update)

    def close_all(self) -> None:
        update = Update("closing", None, time.monotonic())
        for room in self._rooms.values():
            for watcher in room:
                watcher.put(update)
