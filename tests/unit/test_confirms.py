"""Pipelined confirms (tasks/confirms.py) against a scripted channel: publishes do not wait,
`wait()` returns once every delivery tag is confirmed, and a nack or a silence raises."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tasks.confirms import ConfirmChannel, Unconfirmed


class ScriptedConnection:
    """Hands the channel the broker's answers, one frame per drain_events."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, int, bool]] = []
        self.channel: Any = None
        self.drains = 0

    def drain_events(self, timeout: float | None = None) -> None:
        self.drains += 1
        if not self.frames:
            raise TimeoutError()
        kind, tag, multiple = self.frames.pop(0)
        for callback in self.channel.events[f"basic_{kind}"]:
            callback(tag, multiple)


class ScriptedChannel:
    def __init__(self) -> None:
        self.connection = ScriptedConnection()
        self.connection.channel = self
        self.events: defaultdict[str, set[Any]] = defaultdict(set)
        self.is_open = True
        self.sent: list[str] = []
        self.selected = 0

    def confirm_select(self) -> None:
        self.selected += 1

    def _basic_publish(self, body: str, **_: Any) -> None:
        self.sent.append(body)


def publish(confirms: ConfirmChannel, n: int) -> None:
    for i in range(n):
        confirms.channel.basic_publish(f"m{i}", exchange="", routing_key="q", confirm_timeout=3)


def test_publishes_go_out_without_waiting_and_one_wait_collects_every_confirm():
    channel = ScriptedChannel()
    confirms = ConfirmChannel(channel)
    publish(confirms, 5)
    assert channel.sent == ["m0", "m1", "m2", "m3", "m4"] and channel.connection.drains == 0
    channel.connection.frames = [("ack", 2, True), ("ack", 4, False), ("ack", 3, False), ("ack", 5, False)]
    confirms.wait(timeout=1)
    assert confirms.pending == set() and channel.selected == 1


def test_delivery_tags_keep_counting_from_one_call_to_the_next():
    channel = ScriptedChannel()
    confirms = ConfirmChannel(channel)
    publish(confirms, 2)
    channel.connection.frames = [("ack", 2, True)]
    confirms.wait(timeout=1)
    publish(confirms, 2)
    assert confirms.pending == {3, 4}
    channel.connection.frames = [("ack", 4, True)]
    confirms.wait(timeout=1)
    assert confirms.pending == set()


def test_a_nack_raises_once_every_confirm_came_in():
    channel = ScriptedChannel()
    confirms = ConfirmChannel(channel)
    publish(confirms, 3)
    channel.connection.frames = [("nack", 2, False), ("ack", 1, False), ("ack", 3, False)]
    with pytest.raises(Unconfirmed, match="refused 1 message"):
        confirms.wait(timeout=1)
    assert confirms.pending == set()  # clean for the next call
    publish(confirms, 1)
    channel.connection.frames = [("ack", 4, False)]
    confirms.wait(timeout=1)  # the earlier nack is not raised again


def test_a_confirm_that_never_comes_raises_after_the_timeout():
    channel = ScriptedChannel()
    confirms = ConfirmChannel(channel)
    publish(confirms, 2)
    channel.connection.frames = [("ack", 1, False)]
    with pytest.raises(Unconfirmed, match="1 message"):
        confirms.wait(timeout=0.05)
