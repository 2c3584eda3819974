"""Reading a versioned payload: upcast, hold or refuse, decided without a broker or a database."""

from __future__ import annotations

import pytest

from outbox.decisions import hold_delay
from outbox.policies import RetryPolicy
from outbox.versions import Readable, TooNew, Unreadable, Versions


def v1_to_v2(payload):
    payload = dict(payload)
    payload["recipient"] = {"name": payload.pop("name")}
    return payload


def v2_to_v3(payload):
    return {**payload, "currency": payload.get("currency", "EUR")}


@pytest.fixture
def versions() -> Versions:
    known = Versions()
    known.declare("parcel.booked", current=3, upcasters={1: v1_to_v2, 2: v2_to_v3})
    return known


def test_an_old_payload_is_upcast_one_step_at_a_time_to_what_the_consumer_accepts(versions):
    old = {"schema_version": 1, "name": "Ada"}
    assert versions.read("parcel.booked", old, accepts=None) == Readable(
        {"schema_version": 3, "recipient": {"name": "Ada"}, "currency": "EUR"})
    assert versions.read("parcel.booked", old, accepts=2) == Readable(
        {"schema_version": 2, "recipient": {"name": "Ada"}})
    assert old == {"schema_version": 1, "name": "Ada"}  # the message's own payload is left alone


def test_a_payload_newer_than_the_consumer_is_held_not_refused(versions):
    verdict = versions.read("parcel.booked", {"schema_version": 3}, accepts=1)
    assert verdict == TooNew(version=3, accepts=1)
    assert verdict.describe("shipping") == ("held: payload schema_version 3 is newer than shipping accepts "
                                            "(1); it runs once shipping is upgraded")


@pytest.mark.parametrize(("event_type", "payload", "reason"), [
    ("parcel.booked", {"name": "Ada"}, "parcel.booked payload has no schema_version"),
    ("parcel.booked", {"schema_version": "2"}, "schema_version '2', not a whole number"),
    ("parcel.booked", {"schema_version": 0}, "schema_version 0, not a whole number"),
    ("parcel.booked", ["not", "an", "object"], "parcel.booked payload has no schema_version"),
    ("parcel.lost", {"schema_version": 1}, "unknown event type 'parcel.lost'"),
    (None, {"schema_version": 1}, "unknown event type None"),
])
def test_a_payload_that_can_never_be_read_says_why(versions, event_type, payload, reason):
    verdict = versions.read(event_type, payload, accepts=None)
    assert isinstance(verdict, Unreadable) and reason in verdict.reason


def test_payloads_from_before_versioning_can_be_read_as_a_declared_version():
    known = Versions()
    known.declare("order.created", current=1, unversioned_as=1)
    assert known.read("order.created", {"order_id": "o1"}, accepts=None) == Readable(
        {"order_id": "o1", "schema_version": 1})


def test_every_step_below_the_current_version_needs_an_upcaster():
    with pytest.raises(ValueError, match=r"parcel.booked: version 3 needs an upcaster for each of \[2\]"):
        Versions().declare("parcel.booked", current=3, upcasters={1: v1_to_v2})


def test_a_held_payload_waits_on_the_consumer_backoff_without_jitter():
    policy = RetryPolicy(max_retries=3, backoff_base=2, backoff_max=30)
    assert [hold_delay(policy, times_held=n) for n in range(6)] == [2, 4, 8, 16, 30, 30]
    assert hold_delay(policy, times_held=10_000) == 30
