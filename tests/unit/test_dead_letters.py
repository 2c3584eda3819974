"""Dead-letter use cases over an in-memory database, with a recording `publish`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from orders.errors import DeliveryNotFound, InvalidArgument, NotReplayable, ReplayFailed
from orders.place_order import place_order
from outbox import deliveries
from outbox.clock import utcnow
from outbox.dead_letter_actions import (
    Redelivery,
    discard_dead_letter,
    replay_dead_letter,
    replay_dead_letters,
)
from outbox.dead_letters import list_dead_letters, make_filters, parse_moment, show_dead_letter
from outbox.models import DeadLetterAction, Delivery
from tests.support.orders import order_input


def fail(session_factory, event_id: str, consumer: str, errors: list[str]) -> int:
    """Run a delivery through its real state changes: retrying on each error but the last, then dead."""
    for index, error in enumerate(errors):
        deliveries.begin(session_factory, event_id=event_id, consumer=consumer, queue=consumer,
                         lease_seconds=60)
        if index < len(errors) - 1:
            deliveries.mark_retrying(session_factory, event_id=event_id, consumer=consumer, error=error)
        else:
            deliveries.mark_dead(session_factory, event_id=event_id, consumer=consumer, error=error,
                                 traceback=f"Traceback ...\n{error}")
    return delivery(session_factory, event_id, consumer).id


def succeed(session_factory, event_id: str, consumer: str) -> int:
    deliveries.begin(session_factory, event_id=event_id, consumer=consumer, queue=consumer, lease_seconds=60)
    deliveries.deliver(session_factory, event_id=event_id, consumer=consumer, effect=lambda _s: None)
    return delivery(session_factory, event_id, consumer).id


def delivery(session_factory, event_id: str, consumer: str) -> Delivery:
    with session_factory() as session:
        return session.scalars(select(Delivery).where(Delivery.event_id == event_id,
                                                      Delivery.consumer == consumer)).one()


@pytest.fixture
def order(session_factory, gateway):
    return place_order(session_factory=session_factory, gateway=gateway, data=order_input())


@pytest.fixture
def dead_email(session_factory, order) -> int:
    return fail(session_factory, order.event_id, "email",
                ["TransientError: SMTP 451 try later", "TransientError: SMTP 451 try later",
                 "PermanentError: SMTP 550 mailbox unavailable"])


class Recorder:
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[Redelivery] = []
        self.error = error

    def __call__(self, redelivery: Redelivery) -> None:
        if self.error:
            raise self.error
        self.sent.append(redelivery)


def test_list_and_show_a_dead_letter_with_every_attempt(session_factory, order, dead_email):
    [row] = list_dead_letters(session_factory)
    assert (row["id"], row["consumer"], row["attempts"], row["order_id"]) == (
        dead_email, "email", 3, order.order_id)
    assert row["task_id"] == f"{order.event_id}:email"
    assert "550" in row["last_error"]

    shown = show_dead_letter(session_factory, row["task_id"])  # the id Flower shows works too
    assert shown["payload"]["order_id"] == order.order_id
    assert [(e["attempt"], e["outcome"]) for e in shown["errors"]] == [
        (1, "retrying"), (2, "retrying"), (3, "dead")]
    assert "550 mailbox unavailable" in shown["traceback"]


def test_filters_by_consumer_error_text_and_time(session_factory, order, dead_email):
    inventory = fail(session_factory, order.event_id, "inventory", ["OperationalError: disk full"])
    ids = lambda **f: [r["id"] for r in list_dead_letters(session_factory, make_filters(**f))]  # noqa: E731

    assert set(ids()) == {dead_email, inventory}
    assert ids(consumer="inventory") == [inventory]
    assert ids(error="MAILBOX") == [dead_email]
    assert set(ids(since="5m")) == {dead_email, inventory}
    assert ids(until="5m") == []
    assert ids(since=(utcnow() + timedelta(minutes=1)).isoformat()) == []


@pytest.mark.parametrize(("field", "value", "says"), [
    ("consumer", "sms", "unknown consumer 'sms'"),
    ("since", "yesterday-ish", "cannot read time"),
    ("limit", "ten", "whole number"),
    ("state", "alive", "unknown state"),
])
def test_bad_filters_are_named(field, value, says):
    with pytest.raises(InvalidArgument, match=says):
        make_filters(**{field: value})


def test_relative_and_absolute_times():
    now = utcnow()
    assert parse_moment("2h", now=now) == now - timedelta(hours=2)
    assert parse_moment("2026-11-26T22:00:00").isoformat() == "2026-11-26T22:00:00+00:00"


def test_replay_resets_the_delivery_publishes_one_message_and_audits(session_factory, order, dead_email):
    publish = Recorder()
    done = replay_dead_letter(session_factory, ref=dead_email, actor="ada", reason="SMTP fixed",
                              publish=publish)

    [sent] = publish.sent
    assert (sent.consumer, sent.queue, sent.task_name) == ("email", "email", "orders.email.send_confirmation")
    assert sent.task_id == done.task_id == f"{order.event_id}:email"
    assert sent.payload["order_id"] == order.order_id
    row = delivery(session_factory, order.event_id, "email")
    assert (row.state, row.attempts) == ("pending", 0)  # its retry policy applies afresh
    assert list_dead_letters(session_factory) == []
    [action] = show_dead_letter(session_factory, dead_email)["actions"]
    assert (action["action"], action["actor"], action["reason"], action["attempts_before"]) == (
        "replay", "ada", "SMTP fixed", 3)


def test_replaying_a_succeeded_delivery_is_refused(session_factory, order):
    succeeded = succeed(session_factory, order.event_id, "inventory")
    publish = Recorder()
    with pytest.raises(NotReplayable, match="already succeeded"):
        replay_dead_letter(session_factory, ref=succeeded, actor="ada", reason="", publish=publish)
    assert publish.sent == []
    assert delivery(session_factory, order.event_id, "inventory").state == "succeeded"


def test_replaying_one_still_retrying_is_refused(session_factory, order):
    deliveries.begin(session_factory, event_id=order.event_id, consumer="email", queue="email",
                     lease_seconds=60)
    deliveries.mark_retrying(session_factory, event_id=order.event_id, consumer="email", error="451")
    with pytest.raises(NotReplayable, match="is retrying, not dead"):
        replay_dead_letter(session_factory, ref=f"{order.event_id}:email", actor="ada", reason="",
                           publish=Recorder())


def test_unknown_and_malformed_ids(session_factory):
    with pytest.raises(DeliveryNotFound):
        replay_dead_letter(session_factory, ref="999", actor="ada", reason="", publish=Recorder())
    with pytest.raises(InvalidArgument, match="not a delivery id"):
        show_dead_letter(session_factory, "banana")


def test_broker_down_during_replay_leaves_it_dead_and_says_so(session_factory, order, dead_email):
    with pytest.raises(ReplayFailed, match="dead again"):
        replay_dead_letter(session_factory, ref=dead_email, actor="ada", reason="",
                           publish=Recorder(ConnectionError("redis away")))
    row = delivery(session_factory, order.event_id, "email")
    assert (row.state, row.attempts) == ("dead", 3)
    actions = [a["action"] for a in show_dead_letter(session_factory, dead_email)["actions"]]
    assert actions == ["replay", "replay_failed"]


def test_bulk_replay_one_consumer_oldest_first_throttled(session_factory, gateway):
    events = [place_order(session_factory=session_factory, gateway=gateway, data=order_input()).event_id
              for _ in range(3)]
    email_ids = [fail(session_factory, event_id, "email", ["SMTP 550"]) for event_id in events]
    fail(session_factory, events[0], "analytics", ["boom"])
    publish, pauses = Recorder(), []

    result = replay_dead_letters(session_factory, filters=make_filters(consumer="email"), actor="ada",
                                 reason="outage over", publish=publish, per_second=4, sleep=pauses.append)

    assert [r.delivery_id for r in result.replayed] == email_ids
    assert [s.consumer for s in publish.sent] == ["email"] * 3
    assert pauses == [0.25, 0.25]
    assert [r["consumer"] for r in list_dead_letters(session_factory)] == ["analytics"]


def test_discard_needs_a_reason_then_sets_it_aside_for_good(session_factory, order, dead_email):
    with pytest.raises(InvalidArgument, match="reason"):
        discard_dead_letter(session_factory, ref=dead_email, actor="ada", reason=" ")
    discard_dead_letter(session_factory, ref=dead_email, actor="ada", reason="customer cancelled")

    assert list_dead_letters(session_factory) == []
    [row] = list_dead_letters(session_factory, make_filters(state="discarded"))
    assert row["id"] == dead_email
    with pytest.raises(NotReplayable, match="discarded"):
        replay_dead_letter(session_factory, ref=dead_email, actor="ada", reason="", publish=Recorder())
    # A stale copy of its message arriving later is acknowledged and ignored.
    begun = deliveries.begin(session_factory, event_id=order.event_id, consumer="email", queue="email",
                             lease_seconds=60)
    assert begun.start is deliveries.Start.DONE
    with session_factory() as session:
        assert session.scalar(select(DeadLetterAction.actor)) == "ada"
