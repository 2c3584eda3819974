"""Adding a consumer takes a declaration and a handler: nothing else.

`loyalty` (points per euro) is declared here the way orders/subscriptions.py
declares the shop's consumers, with its handler below. With no task, queue or
route written for it, it is delivered, retried and dead-lettered like the
others, by a real worker, and a replay of its dead letter runs it once more.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from orders.errors import PermanentError, TransientError
from orders.subscriptions import ORDER_CREATED
from outbox import dead_letter_actions
from outbox.policies import RetryPolicy
from outbox.subscriptions import Subscriber, declare, registry
from tasks.publisher import replay_publisher
from tasks.relay import relay_once
from tests.support.orders import all_final, deliveries_of, place
from tests.support.waiting import wait_until


class PointsLedger:
    """The loyalty handler's downstream: points per euro, per order; scripted to fail."""

    def __init__(self) -> None:
        self.points: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def award(self, _session: Any, event_id: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.calls[event_id] = self.calls.get(event_id, 0) + 1
            calls = self.calls[event_id]
        customer = payload["customer_email"]
        if customer.startswith("flaky") and calls <= 2:
            raise TransientError("loyalty service busy")
        if customer.startswith("banned") and not self.points.get("unbanned"):
            raise PermanentError("customer is not in the loyalty programme")
        with self._lock:
            assert event_id not in self.points, "points awarded twice"
            self.points[event_id] = payload["total_cents"] // 100


@pytest.fixture
def loyalty() -> Iterator[PointsLedger]:
    ledger = PointsLedger()
    declare(ORDER_CREATED, Subscriber(
        "loyalty", handler=ledger.award, effects_in_database=False,
        policy=RetryPolicy(max_retries=3, backoff_base=0.1, backoff_max=0.3),
    ))
    yield ledger
    registry.withdraw(ORDER_CREATED, "loyalty")


def test_a_declared_consumer_is_delivered_retried_and_dead_lettered_like_the_others(
    loyalty, celery_app, runtime, worker, executions, smtp_sink
):
    sf = runtime.session_factory
    happy = place(sf, customer_email="happy@example.com")
    flaky = place(sf, customer_email="flaky@example.com")
    banned = place(sf, customer_email="banned@example.com")
    relay_once(celery_app, runtime, grace_seconds=0)

    for placed in (happy, flaky, banned):
        wait_until(lambda p=placed: all_final(sf, p.event_id, consumers=4), message="all four final")
    assert ("outbox.loyalty.deliver", "loyalty") in executions.runs  # its own task, on its own queue

    assert deliveries_of(sf, happy.event_id)["loyalty"].state == "succeeded"
    assert loyalty.points[happy.event_id] == happy.total_cents // 100

    flaky_record = deliveries_of(sf, flaky.event_id)["loyalty"]
    assert (flaky_record.state, flaky_record.attempts) == ("succeeded", 3)

    dead = deliveries_of(sf, banned.event_id)["loyalty"]
    assert (dead.state, dead.attempts) == ("dead", 1)
    assert "not in the loyalty programme" in (dead.last_error or "")
    assert deliveries_of(sf, banned.event_id)["email"].state == "succeeded"  # the others unaffected

    loyalty.points["unbanned"] = 1
    dead_letter_actions.replay_dead_letter(sf, ref=dead.id, actor="test", reason="joined the programme",
                                           publish=replay_publisher(celery_app))
    wait_until(lambda: deliveries_of(sf, banned.event_id)["loyalty"].state == "succeeded",
               message="replayed loyalty delivery succeeded")
    assert loyalty.points[banned.event_id] == banned.total_cents // 100
