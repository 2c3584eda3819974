"""A rolling upgrade in either order ends with everything delivered once (real worker, Redis, DB).

`parcel.booked` is at version 2 in the new code (its upcaster renames `name` to
`recipient_name`). The old worker is the `parcel_desk` consumer declared with
`accepts=1`; the new one with `accepts=2`. Payloads are written as the old or the new
web process writes them and published by the relay.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from outbox.clock import new_id
from outbox.models import OutboxEvent
from outbox.policies import RetryPolicy
from outbox.subscriptions import Subscriber, declare, registry
from outbox.versions import versions
from tasks.relay import relay_once
from tests.support.orders import deliveries_of
from tests.support.waiting import wait_until

PARCEL = "parcel.booked"


class Shipments:
    def __init__(self) -> None:
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def book(self, _session: Any, event_id: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.seen.setdefault(event_id, []).append(payload)


def v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    payload = dict(payload)
    payload["recipient_name"] = payload.pop("name")
    return payload


@pytest.fixture
def shipping(celery_app) -> Iterator[tuple[Shipments, Any]]:
    # Configure the app first: a consumer declared later gets its queue added at once
    # (tasks/consumer_tasks.py), whatever an earlier test did to celeryconfig's import.
    assert celery_app.conf.task_queues
    shipments = Shipments()
    versions.declare(PARCEL, current=2, upcasters={1: v1_to_v2})

    def deploy(accepts: int) -> None:
        """Run the parcel_desk consumer's code that understands up to `accepts`."""
        registry.withdraw(PARCEL, "parcel_desk")
        declare(PARCEL, Subscriber("parcel_desk", handler=shipments.book, accepts=accepts,
                                   effects_in_database=False,
                                   policy=RetryPolicy(max_retries=2, backoff_base=0.1, backoff_max=0.3)))

    deploy(accepts=1)  # declared before the worker starts, so that it consumes the queue
    yield shipments, deploy
    registry.withdraw(PARCEL, "parcel_desk")
    versions.withdraw(PARCEL)


def write(session_factory, payload: dict[str, Any]) -> str:
    event_id = new_id()
    with session_factory.begin() as session:
        session.add(OutboxEvent(id=event_id, event_type=PARCEL, aggregate_id=new_id(),
                                payload={"event_id": event_id, **payload}))
    return event_id


def record(session_factory, event_id: str):
    return deliveries_of(session_factory, event_id).get("parcel_desk")


def test_old_worker_holds_new_payloads_until_upgraded_then_everything_is_delivered_once(
        shipping, celery_app, runtime, worker):
    shipments, deploy = shipping
    sf = runtime.session_factory
    deploy(accepts=1)  # the old worker is still running when the new web and relay start
    old = write(sf, {"schema_version": 1, "name": "Ada"})
    new = write(sf, {"schema_version": 2, "recipient_name": "Grace"})
    relay_once(celery_app, runtime, grace_seconds=0)  # one message: a batch of both

    wait_until(lambda: (r := record(sf, old)) is not None and r.state == "succeeded", message="v1 delivered")
    held = wait_until(lambda: (r := record(sf, new)) is not None and r.state == "pending"
                      and "held" in (r.last_error or "") and r, message="v2 held, visibly")
    assert held.attempts == 0  # holding spends no attempt
    assert "schema_version 2 is newer than parcel_desk accepts (1)" in (held.last_error or "")
    assert new not in shipments.seen

    deploy(accepts=2)  # the worker is upgraded; the held message runs on its next look
    wait_until(lambda: record(sf, new).state == "succeeded", message="v2 delivered after the upgrade")
    assert record(sf, new).attempts == 1
    assert shipments.seen[old] == [{"schema_version": 1, "event_id": old, "name": "Ada"}]
    assert shipments.seen[new] == [{"schema_version": 2, "event_id": new, "recipient_name": "Grace"}]


def test_new_worker_upcasts_payloads_the_old_code_wrote(shipping, celery_app, runtime, worker):
    shipments, deploy = shipping
    sf = runtime.session_factory
    deploy(accepts=2)  # the workers were upgraded first; the old web process still writes version 1
    old = write(sf, {"schema_version": 1, "name": "Ada"})
    relay_once(celery_app, runtime, grace_seconds=0)

    wait_until(lambda: (r := record(sf, old)) is not None and r.state == "succeeded", message="delivered")
    assert shipments.seen[old] == [{"schema_version": 2, "event_id": old, "recipient_name": "Ada"}]


def test_a_payload_that_can_never_be_read_is_a_dead_letter_saying_why(shipping, celery_app, runtime, worker):
    shipments, deploy = shipping
    sf = runtime.session_factory
    deploy(accepts=2)
    unversioned = write(sf, {"name": "Ada"})
    relay_once(celery_app, runtime, grace_seconds=0)

    dead = wait_until(lambda: (r := record(sf, unversioned)) is not None and r.state == "dead" and r,
                      message="dead letter")
    assert dead.attempts == 1
    assert dead.last_error == ("PermanentError: parcel.booked payload has no schema_version: "
                               "cannot tell how to read it")
    assert unversioned not in shipments.seen
