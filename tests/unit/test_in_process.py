"""Delivery modes: who is durable, who is in-process, and how in-process receivers are called."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest

from config.settings import Settings
from orders.subscriptions import CUSTOMER_SIGNED_UP, ORDER_CREATED
from outbox import in_process
from outbox.after_commit import combine
from outbox.subscriptions import IN_PROCESS, Subscriber, all_consumers, subscribers_of


@dataclass
class FakeEvent:
    id: str
    event_type: str
    payload: Any


def test_durable_is_the_default_and_only_durable_subscribers_get_queues():
    assert [s.consumer for s in subscribers_of(ORDER_CREATED)] == ["email", "inventory", "analytics"]
    assert subscribers_of(CUSTOMER_SIGNED_UP) == ()
    assert [s.consumer for s in subscribers_of(CUSTOMER_SIGNED_UP, IN_PROCESS)] == ["welcome_email"]
    assert "welcome_email" not in all_consumers()


def test_a_subscriber_must_say_how_it_is_reached():
    with pytest.raises(ValueError, match="needs one handler"):
        Subscriber("x")
    with pytest.raises(ValueError, match="needs one handler"):
        Subscriber("x", mode=IN_PROCESS)
    with pytest.raises(ValueError, match="needs one handler"):
        Subscriber("x", handler=print, opens=lambda settings: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="mode"):
        Subscriber("x", handler=print, mode="carrier-pigeon")


def test_a_durable_subscriber_gets_a_task_named_after_it_unless_it_names_one():
    assert Subscriber("loyalty", handler=print).task_name == "outbox.loyalty.deliver"
    assert Subscriber("email", handler=print, task_name="orders.email.send_confirmation").task_name == (
        "orders.email.send_confirmation")


def test_every_receiver_runs_even_when_one_raises_and_nothing_reaches_the_caller(caplog):
    calls: list[tuple[str, str]] = []

    def broken(sender: str, **_: Any) -> None:
        raise RuntimeError("boom")

    def working(sender: str, *, event_id: str, payload: Any, settings: Settings) -> None:
        calls.append((sender, event_id))

    signal = in_process.signal_for("test.unit_event")
    signal.connect(broken)
    signal.connect(working)
    try:
        with caplog.at_level(logging.ERROR, logger="outbox.in_process"):
            ok = in_process.dispatch(FakeEvent("e1", "test.unit_event", {}), settings=Settings())
    finally:
        signal.disconnect(broken)
        signal.disconnect(working)
    assert ok == 1
    assert calls == [("test.unit_event", "e1")]
    assert "RuntimeError: boom" in caplog.text and "e1" in caplog.text


def test_combined_after_commit_callbacks_are_isolated_from_each_other():
    seen: list[str] = []

    def first(event: Any) -> None:
        raise OSError("broker away")

    combine(first, None, lambda event: seen.append(event.id))(FakeEvent("e2", "x", {}))

    assert seen == ["e2"]
