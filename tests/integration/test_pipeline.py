"""An order's event reaches every consumer once, on its own queue, through a real worker."""

from __future__ import annotations

import pytest

from tasks.relay import relay_once
from tests.support.orders import all_final, deliveries_of, place, revenue_rows, stock
from tests.support.waiting import wait_until

# Where Redis and RabbitMQ differ (queues, countdowns, acks): run on both.
pytestmark = pytest.mark.both_brokers


def test_one_order_runs_each_consumer_exactly_once_on_its_own_queue(
    celery_app, runtime, worker, executions, smtp_sink
):
    before = stock(runtime.session_factory, "mug")
    placed = place(runtime.session_factory, lines=[{"sku": "mug", "quantity": 2}])

    assert relay_once(celery_app, runtime, grace_seconds=0) == 1
    final = wait_until(lambda: all_final(runtime.session_factory, placed.event_id),
                       message="all three deliveries final")

    assert final == {"email": "succeeded", "inventory": "succeeded", "analytics": "succeeded"}
    assert sorted(executions.runs) == [
        ("orders.analytics.record_revenue", "analytics"),
        ("orders.email.send_confirmation", "email"),
        ("orders.inventory.reserve_stock", "inventory"),
    ]
    records = deliveries_of(runtime.session_factory, placed.event_id)
    assert {c: (d.queue, d.attempts) for c, d in records.items()} == {
        "email": ("email", 1), "inventory": ("inventory", 1), "analytics": ("analytics", 1),
    }
    assert stock(runtime.session_factory, "mug") == before - 2
    assert revenue_rows(runtime.session_factory, placed.event_id) == 1
    [mail] = smtp_sink.messages()
    assert f"Your order {placed.order_id} is confirmed".encode() in mail


@pytest.mark.parametrize("copies", [2])
def test_redelivered_and_republished_messages_have_no_second_effect(
    celery_app, runtime, worker, executions, smtp_sink, copies
):
    from tasks.publisher import publish_events
    from tests.support.orders import outbox_event

    before = stock(runtime.session_factory, "tee")
    placed = place(runtime.session_factory, lines=[{"sku": "tee", "quantity": 3}])
    event = outbox_event(runtime.session_factory, placed.event_id)

    # The same message twice, back to back (a redelivery racing the original)...
    for _ in range(copies):
        publish_events(celery_app, [event])
    wait_until(lambda: all_final(runtime.session_factory, placed.event_id))
    wait_until(lambda: len(executions.runs) >= 3 * copies, message="every copy was executed")
    # ...and once more after everything succeeded (the relay republishing it, with the
    # order.reserved inventory wrote: once, however many copies ran).
    assert relay_once(celery_app, runtime, grace_seconds=0) == 2
    wait_until(lambda: len(executions.runs) >= 3 * (copies + 1), message="republished copies ran")

    assert stock(runtime.session_factory, "tee") == before - 3
    assert len(smtp_sink.messages()) == 1
    assert revenue_rows(runtime.session_factory, placed.event_id) == 1
    records = deliveries_of(runtime.session_factory, placed.event_id)
    assert all(d.state == "succeeded" for d in records.values())
