"""Faults 3 and 4: Redis down while orders are placed; Redis restarted empty under queued messages."""

from __future__ import annotations

import time

from orders.queries import list_products
from tests.support.http import place_many
from tests.support.orders import order_input
from tests.support.tally import settled, tally
from tests.support.waiting import wait_until

CONSUMERS = ("email", "inventory", "analytics")


def mug_order(_i: int) -> dict:
    return order_input(lines=[{"sku": "mug", "quantity": 1}])


def test_redis_down_while_50_orders_are_placed_then_all_150_deliveries_succeed_once(
    procs, db, owned_redis, mail_sink
):
    web = procs.web()
    procs.relay()
    for consumer in CONSUMERS:
        procs.worker(consumer)
    owned_redis.kill()
    owned_redis.wait_until_down()

    answers = place_many(web, 50, make=mug_order)

    assert [a.status for a in answers] == [201] * 50, [a.body for a in answers if a.status != 201][:3]
    seconds = sorted(a.seconds for a in answers)
    assert seconds[len(seconds) // 2] < 2 and seconds[-1] < 10, "a request never waits for the broker"
    assert tally(db, []).unpublished == 50, "nothing could be published while Redis was down"

    owned_redis.start()  # same port, empty: no persistence
    started = time.monotonic()
    wait_until(lambda: settled(db, 150), timeout=90, interval=0.25, message="150 deliveries final")
    figures = tally(db, mail_sink.messages())
    print(f"\nredis outage: {figures} recovered in {time.monotonic() - started:.1f}s")
    assert figures.orders == 50 and figures.unpublished == 0
    assert figures.deliveries == {"succeeded": 150}
    assert figures.emails == 50 and figures.duplicate_emails == 0
    assert figures.revenue_rows == 50
    assert _stock(db)["mug"] == 100 - 50, "stock taken once per order"


def test_redis_restarted_empty_under_queued_messages_reconciler_republishes_them(
    procs, db, owned_redis, mail_sink
):
    web = procs.web()
    relay = procs.relay(RECONCILE_AFTER_SECONDS="10")
    procs.worker("inventory")  # email and analytics have no worker yet: their messages wait in Redis
    answers = place_many(web, 20, make=mug_order)
    assert {a.status for a in answers} == {201}
    redis = owned_redis.client()
    # At least 20: under load the relay may publish an event the fast path also sent (harmless).
    wait_until(lambda: redis.llen("email") >= 20 and redis.llen("analytics") >= 20, timeout=30,
               message="messages waiting in their queues")
    wait_until(lambda: settled(db, 20), timeout=30, message="inventory delivered")

    owned_redis.kill()  # the queued messages are gone with it
    owned_redis.start()
    assert owned_redis.client().llen("email") == 0
    procs.worker("email")
    procs.worker("analytics")

    started = time.monotonic()
    wait_until(lambda: settled(db, 60), timeout=90, interval=0.25, message="60 deliveries final")
    figures = tally(db, mail_sink.messages())
    print(f"\nredis restarted empty: {figures} recovered in {time.monotonic() - started:.1f}s")
    # and order.reserved's 20 shipping deliveries (no shipping worker here), which the
    # reconciler found missing too and stamped pending when it sent them again
    assert figures.deliveries == {"succeeded": 60, "pending": 20}
    assert pending_consumers(db) == {"shipping"}
    assert figures.emails == 20 and figures.duplicate_emails == 0
    assert figures.revenue_rows == 20
    assert _stock(db)["mug"] == 100 - 20
    log = relay.text()
    print("\n".join(line[:300] for line in log.splitlines() if "reconciler republished" in line))
    assert "reconciler republished" in log
    assert "consumer=inventory" not in log, "only the lost deliveries are republished"


def _stock(db) -> dict[str, int]:
    return {p["sku"]: p["stock"] for p in list_products(db)}


def pending_consumers(db) -> set[str]:
    from sqlalchemy import select

    from outbox.models import Delivery

    with db() as session:
        return set(session.scalars(select(Delivery.consumer).where(Delivery.state == "pending")))
