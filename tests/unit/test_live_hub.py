"""The stream server's fan-out and limits, and one stream's ordering, without sockets."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from live.hub import ClientFull, Hub, StreamsFull, Update
from live.stream import pump


def status(state: str, attempts: int, consumer: str = "email", event_id: str = "e1") -> dict:
    return {"event_id": event_id, "consumer": consumer, "state": state, "attempts": attempts,
            "last_error": None}


def test_caps_per_process_and_per_client_and_leaving_frees_the_slot():
    hub = Hub(max_open=3, max_per_client=2)
    a1, _a2 = hub.admit("o1", "10.0.0.1"), hub.admit("o2", "10.0.0.1")
    with pytest.raises(ClientFull):
        hub.admit("o1", "10.0.0.1")
    hub.admit("o1", "10.0.0.2")
    with pytest.raises(StreamsFull):
        hub.admit("o3", "10.0.0.3")
    hub.leave(a1)
    hub.leave(a1)  # twice is harmless
    assert hub.open_streams == 2
    hub.admit("o1", "10.0.0.1")


def test_an_update_reaches_only_the_streams_of_its_order():
    hub = Hub(max_open=10, max_per_client=10)
    mine, also_mine, other = hub.admit("o1", "a"), hub.admit("o1", "b"), hub.admit("o2", "a")
    hub.watch_events("o1", [status("pending", 0, event_id="e1")])
    hub.watch_events("o2", [status("pending", 0, event_id="e2")])
    hub.dispatch(status("running", 1, event_id="e1"))
    hub.dispatch(status("running", 1, event_id="unwatched"))
    assert mine.queue.qsize() == also_mine.queue.qsize() == 1 and other.queue.empty()
    hub.leave(mine)
    hub.leave(also_mine)
    assert not hub.knows_events_of("o1") and hub.watched_orders() == ["o2"]


def run_pump(first: list[dict], updates: list[Update], began: float = 0.0,
             keepalive: float = 60.0, reread: Any = lambda: None) -> list[str]:
    hub = Hub(max_open=10, max_per_client=10)
    watcher = hub.admit("o1", "a")
    for update in updates:
        watcher.put(update)
    written: list[str] = []

    async def write(text: str) -> None:
        written.append(text)

    pumping = pump(write, watcher, first, began, keepalive_seconds=keepalive, reread=reread)
    run_in_own_loop(asyncio.wait_for(pumping, 5))
    return written


def run_in_own_loop(coroutine: Any) -> Any:
    """asyncio.run on a thread of its own: a session-wide Playwright (the browser tests) keeps an
    event loop running in the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def shown(written: list[str]) -> list[tuple[str, int]]:
    return [(d["state"], d["attempts"]) for chunk in written for line in chunk.splitlines()
            if line.startswith("data: ") and "state" in (d := json.loads(line[6:]))]


def test_a_read_that_began_before_a_sent_change_cannot_move_the_stream_back():
    written = run_pump([status("pending", 0)], [
        Update("channel", [status("running", 1)], at=5.0),
        Update("database", [status("pending", 0)], at=4.0),  # began before: stale, skipped
        Update("database", [status("retrying", 1)], at=6.0),
        Update("channel", [status("running", 1)], at=7.0),  # older than what was sent
        Update("channel", [status("succeeded", 2)], at=8.0),
        Update("database", [status("succeeded", 2)], at=9.0),  # the re-read it asked for
    ], began=1.0)
    assert shown(written) == [("pending", 0), ("running", 1), ("retrying", 1), ("succeeded", 2)]
    assert written[-1].startswith("event: end")


def test_a_stream_that_looks_finished_asks_the_database_and_goes_on_to_the_next_hop():
    """inventory's success commits with order.reserved, which no channel message announces."""
    asked: list[float] = []
    written = run_pump([status("running", 1)], [
        Update("channel", [status("succeeded", 1)], at=2.0),  # everything known looks final
        Update("database", [status("succeeded", 1), status("pending", 0, consumer="shipping")], at=3.0),
        Update("database", [status("succeeded", 1), status("succeeded", 1, consumer="shipping")], at=4.0),
    ], began=1.0, reread=lambda: asked.append(1.0))
    assert shown(written) == [("running", 1), ("succeeded", 1), ("pending", 0), ("succeeded", 1)]
    assert written[-1].startswith("event: end") and asked  # it asked, instead of ending at 2.0


def test_a_finished_order_ends_at_once_and_ids_let_the_client_reconnect():
    written = run_pump([status("succeeded", 1), status("dead", 4, consumer="inventory")], [])
    assert shown(written) == [("succeeded", 1), ("dead", 4)]
    assert "id: 1\n" in written[0] and "id: 2\n" in written[0]
    assert written[-1].startswith("event: end")


def test_an_idle_stream_sends_keepalives_on_rereads_and_stops_when_closing():
    written = run_pump([status("pending", 0)], [
        Update("database", [status("pending", 0)], at=2.0),
        Update("database", None, at=3.0),  # a failed re-read is still a tick
        Update("closing", None, at=4.0),
    ], keepalive=0.0)
    assert written[1:] == [": keep-alive\n\n", ": keep-alive\n\n"]
