"""The stream server's feed loop (live/feed.py): a lost subscription is retried, and said."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from live import feed


def status(event_id: str) -> str:
    return json.dumps({"event_id": event_id, "consumer": "email", "state": "succeeded", "attempts": 1,
                       "last_error": None})


def run_in_own_thread(coro_factory) -> None:  # type: ignore[no-untyped-def]
    """asyncio.run on a thread of its own: browser tests may keep a loop on the main thread."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the feed loop did not stop"
    if failure:
        raise failure[0]


def test_refused_then_dropped_then_live_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "RECONNECT_SECONDS", (0.01,))
    connections = 0
    closed = 0
    updates: list[dict[str, Any]] = []
    states: list[bool] = []

    async def listen() -> AsyncGenerator[Any, None]:
        nonlocal connections, closed
        connections += 1
        try:
            if connections == 1:
                raise ConnectionRefusedError("broker not up yet")
            yield feed.LIVE
            yield status(f"e{connections}")
            yield b"not a status"  # ignored, with a warning
            if connections == 2:
                raise ConnectionResetError("link lost")
            await asyncio.Event().wait()  # the third stays live until cancelled
        finally:
            closed += 1

    async def scenario() -> None:
        task = asyncio.create_task(feed.keep_listening(listen, updates.append, states.append))
        while len(updates) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_in_own_thread(scenario)
    assert [u["event_id"] for u in updates] == ["e2", "e3"]
    # refused: down; second: live then lost; third: live, then down when the server stops.
    assert states == [False, True, False, True, False]
    assert closed == connections == 3  # every connection was closed, the failing ones too
