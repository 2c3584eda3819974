"""The cross-service workflow with real processes on two PostgreSQL databases: orders -> inventory
-> order.reserved -> shipping (its own database, outbox, relay and worker) -> shipment.* ->
fulfilment -> shipped, or the compensation (refund, stock back, cancelled) -> the customer's mail.

Every figure is read from the databases, the carrier's and gateway's ledgers and the SMTP sink."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import func, select

from orders.models import Order
from orders.payments import refunds_in
from outbox.db import SessionFactory, make_engine, make_session_factory
from outbox.models import Delivery, OutboxEvent
from shipping.carrier import SimulatedCarrier
from shipping.models import Shipment
from tasks.publisher import publish_events
from tests.support.databases import fresh_database
from tests.support.orders import address, place, stock
from tests.support.processes import Processes
from tests.support.waiting import wait_until

# Every consumer of the orders service in one worker; shipping in its own (the one killed).
ORDERS_QUEUES = "email,inventory,analytics,customer_mail,fulfilment"


@pytest.fixture
def ship_url(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path / "shipping") as url:
        yield url


@pytest.fixture
def ship_db(ship_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(ship_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def ledgers(tmp_path: Path) -> dict[str, str]:
    return {"CARRIER_LEDGER": str(tmp_path / "carrier.sqlite3"),
            "PAYMENTS_LEDGER": str(tmp_path / "payments.sqlite3")}


@pytest.fixture
def chain(procs: Processes, ship_url: str, ledgers: dict[str, str]) -> Processes:
    """The processes' environment with the shipping database, the ledgers, a short outage."""
    procs.env.update(SHIPPING_DATABASE_URL=ship_url, CARRIER_UNAVAILABLE_ATTEMPTS="2", **ledgers)
    return procs


def start_all(chain: Processes, **shipping_env: str) -> None:
    chain.relay(service="orders")
    chain.relay(service="shipping")
    chain.worker(ORDERS_QUEUES, concurrency=2)
    chain.worker("shipping", **shipping_env)


def status(db: SessionFactory, order_id: str) -> str | None:
    with db() as session:
        order = session.get(Order, order_id)
    return order.status if order else None


def statuses(db: SessionFactory, order_ids: list[str]) -> Counter[str]:
    with db() as session:
        return Counter(session.scalars(select(Order.status).where(Order.id.in_(order_ids))))


def shipments(ship_db: SessionFactory, order_id: str) -> list[Shipment]:
    with ship_db() as session:
        return list(session.scalars(select(Shipment).where(Shipment.order_id == order_id)))


def events(db: SessionFactory, order_id: str, event_type: str) -> list[OutboxEvent]:
    with db() as session:
        return list(session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == order_id,
                                                              OutboxEvent.event_type == event_type)))


def mails(mail_sink, order_id: str) -> Counter[str]:
    """Subject -> copies received, for this order's mails."""
    found: Counter[str] = Counter()
    for raw in mail_sink.messages():
        subject = str(message_from_bytes(raw)["Subject"])
        if order_id in subject:
            found[subject.replace(order_id, "<id>")] += 1
    return found


def dead_letters(*dbs: SessionFactory) -> int:
    total = 0
    for db in dbs:
        with db() as session:
            total += session.scalar(select(func.count()).select_from(Delivery)
                                    .where(Delivery.state == "dead")) or 0
    return total


def test_many_concurrent_orders_each_ship_once_with_two_mails(chain, db, ship_db, mail_sink, ledgers):
    start_all(chain)
    before = stock(db, "mug")
    with ThreadPoolExecutor(8) as pool:
        placed = list(pool.map(lambda _i: place(db, lines=[{"sku": "mug", "quantity": 1}]), range(24)))
    ids = [p.order_id for p in placed]

    wait_until(lambda: statuses(db, ids)["shipped"] == len(ids) or None, timeout=120,
               message="every order shipped")
    wait_until(lambda: all(mails(mail_sink, i)["Your order <id> has shipped"] for i in ids), timeout=60,
               message="every shipped mail")
    assert stock(db, "mug") == before - len(ids)
    bookings = SimulatedCarrier(ledgers["CARRIER_LEDGER"]).bookings()
    for order_id in ids:
        [shipment] = shipments(ship_db, order_id)
        assert shipment.status == "booked" and shipment.booking_id in bookings
        assert mails(mail_sink, order_id) == {"Your order <id> is confirmed": 1,
                                              "Your order <id> has shipped": 1}
        assert len(events(db, order_id, "order.shipped")) == 1
    assert len(bookings) == len(ids)
    assert dead_letters(db, ship_db) == 0


def test_postcode_00000_is_cancelled_refunded_once_and_its_stock_given_back(
    chain, db, ship_db, mail_sink, ledgers
):
    start_all(chain)
    before = stock(db, "tee")
    placed = place(db, lines=[{"sku": "tee", "quantity": 3}], shipping_address=address(postcode="00000"))

    wait_until(lambda: status(db, placed.order_id) == "cancelled", timeout=60, message="cancelled")
    wait_until(lambda: mails(mail_sink, placed.order_id)["Your order <id> is cancelled"], timeout=30)
    assert stock(db, "tee") == before
    assert refunds_in(ledgers["PAYMENTS_LEDGER"]) == {placed.payment_id: 1}
    with db() as session:
        order = session.get(Order, placed.order_id)
        assert order is not None and order.refund_id and order.refunded_at
    [shipment] = shipments(ship_db, placed.order_id)
    assert shipment.status == "rejected" and "00000" in (shipment.reason or "")
    assert mails(mail_sink, placed.order_id) == {"Your order <id> is confirmed": 1,
                                                 "Your order <id> is cancelled": 1}
    assert SimulatedCarrier(ledgers["CARRIER_LEDGER"]).bookings() == {}
    assert dead_letters(db, ship_db) == 0


def test_postcode_99999_is_retried_through_the_outage_then_shipped_without_a_dead_letter(
    chain, db, ship_db, mail_sink
):
    start_all(chain)  # the carrier refuses the first 2 attempts; the policy allows 5 retries
    placed = place(db, shipping_address=address(postcode="99999"))

    wait_until(lambda: status(db, placed.order_id) == "shipped", timeout=60, message="shipped")
    [reserved] = events(db, placed.order_id, "order.reserved")
    with ship_db() as session:
        record = session.scalars(select(Delivery).where(Delivery.event_id == reserved.id)).one()
    assert (record.consumer, record.state, record.attempts) == ("shipping", "succeeded", 3)
    assert len(shipments(ship_db, placed.order_id)) == 1
    assert dead_letters(db, ship_db) == 0


def test_each_hop_delivered_twice_changes_nothing(chain, db, ship_db, mail_sink, ledgers, publisher):
    start_all(chain)
    before = {sku: stock(db, sku) for sku in ("mug", "poster")}
    shipped = place(db, lines=[{"sku": "mug", "quantity": 1}])
    refused = place(db, lines=[{"sku": "poster", "quantity": 2}], shipping_address=address(postcode="00000"))
    both = [shipped.order_id, refused.order_id]
    wait_until(lambda: statuses(db, both) == {"shipped": 1, "cancelled": 1}, timeout=60)
    wait_until(lambda: len(mail_sink.messages()) == 4, timeout=30, message="two mails per order")

    # Every event of both orders, from both outboxes, published once more (and twice at once).
    copies = [e for order in (shipped, refused) for e in
              [*_all_events(db, order.order_id), *_all_events(ship_db, order.order_id)]]
    assert len(copies) == 8  # created, reserved, shipment.*, shipped|cancelled: per order
    publish_events(publisher, copies)
    publish_events(publisher, copies)
    logs = lambda: sum(p.text().count("'duplicate'") for p in chain.started)  # noqa: E731
    expected = 2 * sum(len(_consumers(e.event_type)) for e in copies)
    wait_until(lambda: logs() >= expected, timeout=60, message="every copy ran as a duplicate")

    assert {sku: stock(db, sku) for sku in before} == {"mug": before["mug"] - 1, "poster": before["poster"]}
    assert refunds_in(ledgers["PAYMENTS_LEDGER"]) == {refused.payment_id: 1}
    assert len(shipments(ship_db, shipped.order_id)) == len(shipments(ship_db, refused.order_id)) == 1
    assert len(SimulatedCarrier(ledgers["CARRIER_LEDGER"]).bookings()) == 1
    assert len(mail_sink.messages()) == 4
    assert (status(db, shipped.order_id), status(db, refused.order_id)) == ("shipped", "cancelled")


def test_a_crash_between_each_hops_commit_and_its_publish_still_completes_once(
    chain, db, ship_db, mail_sink, publisher
):
    """No relay runs while a hop commits: its follow-up event waits in that service's outbox
    (the state a relay killed right after the commit leaves), and goes out once one starts."""
    chain.worker(ORDERS_QUEUES, concurrency=2)
    chain.worker("shipping")
    placed = place(db)
    publish_events(publisher, events(db, placed.order_id, "order.created"))  # a relay that then died

    # inventory committed: order.reserved waits, unpublished
    wait_until(lambda: status(db, placed.order_id) == "reserved", timeout=30)
    [reserved] = events(db, placed.order_id, "order.reserved")
    assert reserved.published_at is None and shipments(ship_db, placed.order_id) == []
    orders_relay = chain.relay(service="orders")
    # shipping committed: shipment.booked waits in the shipping outbox; the order stays reserved
    wait_until(lambda: shipments(ship_db, placed.order_id), timeout=30, message="booked")
    orders_relay.kill_group(signal.SIGKILL)
    [booked] = events(ship_db, placed.order_id, "shipment.booked")
    assert booked.published_at is None and status(db, placed.order_id) == "reserved"
    shipping_relay = chain.relay(service="shipping")
    # fulfilment committed: shipped, and order.shipped waits (no orders relay now): no mail yet
    wait_until(lambda: status(db, placed.order_id) == "shipped", timeout=30)
    [order_shipped] = events(db, placed.order_id, "order.shipped")
    assert order_shipped.published_at is None
    assert "Your order <id> has shipped" not in mails(mail_sink, placed.order_id)
    shipping_relay.kill_group(signal.SIGKILL)
    chain.relay(service="orders")
    wait_until(lambda: mails(mail_sink, placed.order_id)["Your order <id> has shipped"], timeout=30)

    assert mails(mail_sink, placed.order_id) == {"Your order <id> is confirmed": 1,
                                                 "Your order <id> has shipped": 1}
    assert len(shipments(ship_db, placed.order_id)) == 1
    for kind in ("order.reserved", "order.shipped"):
        assert len(events(db, placed.order_id, kind)) == 1


def test_the_shipping_worker_killed_mid_booking_does_not_double_the_booking(
    chain, db, ship_db, mail_sink, ledgers
):
    chain.relay(service="orders")
    chain.relay(service="shipping")
    chain.worker(ORDERS_QUEUES, concurrency=2)
    # 5 s: inside the task's soft time limit (7 s in these tests), long enough to kill it in.
    slow = chain.worker("shipping", CARRIER_LATENCY_SECONDS="5")
    carrier = SimulatedCarrier(ledgers["CARRIER_LEDGER"])
    placed = place(db)

    # The carrier has booked; its answer has not reached the worker, which has committed nothing.
    wait_until(lambda: carrier.bookings(), timeout=60, message="booked at the carrier")
    assert shipments(ship_db, placed.order_id) == []
    [child] = slow.children()
    os.kill(child, signal.SIGKILL)  # the pool process running the booking: the message comes back
    wait_until(lambda: status(db, placed.order_id) == "shipped", timeout=60,
               message="shipped after the kill")

    [(booking_id, asked)] = carrier.bookings().items()
    assert asked == 2  # asked twice for the same booking: one parcel
    [shipment] = shipments(ship_db, placed.order_id)
    assert shipment.booking_id == booking_id
    assert len(events(ship_db, placed.order_id, "shipment.booked")) == 1
    wait_until(lambda: mails(mail_sink, placed.order_id)["Your order <id> has shipped"], timeout=30)
    assert mails(mail_sink, placed.order_id)["Your order <id> has shipped"] == 1


def _all_events(db: SessionFactory, order_id: str) -> list[OutboxEvent]:
    with db() as session:
        return list(session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == order_id)))


def _consumers(event_type: str) -> list[str]:
    from outbox.subscriptions import subscribers_of

    return [s.consumer for s in subscribers_of(event_type)]

