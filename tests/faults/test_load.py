"""Load and concurrency over HTTP, against gunicorn (2 workers, gthread) and PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select, update

from orders.models import OrderLine, Product
from tests.support.http import place_many
from tests.support.orders import order_input
from tests.support.tally import settled, tally
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(300)

CONSUMERS = ("email", "inventory", "analytics")
ORDERS = 1000
PLENTY = 1_000_000


def set_stock(db, **stock: int) -> None:
    with db.begin() as session:
        for sku, units in stock.items():
            session.execute(update(Product).where(Product.sku == sku).values(stock=units))


def stock_of(db) -> dict[str, int]:
    with db() as session:
        return dict(session.execute(select(Product.sku, Product.stock)).all())  # type: ignore[arg-type]


def test_1000_concurrent_orders_each_delivered_exactly_once(procs, db, mail_sink):
    set_stock(db, mug=PLENTY, tee=PLENTY, poster=PLENTY)
    web = procs.web(workers=2, threads=4)
    procs.relay()
    for consumer in CONSUMERS:
        procs.worker(consumer, concurrency=2)
    rng = random.Random(4)
    orders = [order_input(lines=[{"sku": sku, "quantity": rng.randint(1, 3)}
                                 for sku in rng.sample(["mug", "tee", "poster"], rng.randint(1, 3))])
              for _ in range(ORDERS)]
    wanted = Counter()
    for order in orders:
        for line in order["lines"]:
            wanted[line["sku"]] += line["quantity"]

    started = time.monotonic()
    answers = place_many(web, ORDERS, threads=16, make=lambda i: orders[i])
    placed_in = time.monotonic() - started
    assert Counter(a.status for a in answers) == {201: ORDERS}
    wait_until(lambda: settled(db, 3 * ORDERS), timeout=240, interval=0.5,
               message=f"{3 * ORDERS} deliveries final")
    total = time.monotonic() - started

    figures = tally(db, mail_sink.messages())
    print(f"\nload: {ORDERS} orders placed in {placed_in:.1f}s, all delivered in {total:.1f}s: {figures}")
    assert figures.orders == ORDERS and figures.unpublished == 0, "outbox empty"
    assert figures.deliveries == {"succeeded": 3 * ORDERS}, "zero dead letters"
    assert figures.emails == ORDERS and figures.duplicate_emails == 0, "zero duplicate emails"
    assert figures.revenue_rows == ORDERS
    assert stock_of(db) == {sku: PLENTY - wanted[sku] for sku in ("mug", "tee", "poster")}, \
        "stock taken exactly once per line"


def test_200_concurrent_orders_for_stock_of_50_take_exactly_50(procs, db):
    set_stock(db, tee=50)
    web = procs.web(workers=2, threads=4)
    procs.relay()
    # Two inventory workers of four processes each: up to eight decrements at the same time.
    procs.worker("inventory", concurrency=4)
    procs.worker("inventory", concurrency=4)
    lowest = [50]
    done = threading.Event()

    def watch() -> None:  # the stock as any reader would see it, all along the run
        while not done.is_set():
            lowest[0] = min(lowest[0], stock_of(db)["tee"])
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        answers = place_many(web, 200, threads=16,
                             make=lambda _i: order_input(lines=[{"sku": "tee", "quantity": 1}]))
        assert Counter(a.status for a in answers) == {201: 200}
        wait_until(lambda: settled(db, 200), timeout=120, interval=0.25, message="200 inventory deliveries")
    finally:
        done.set()
        watcher.join(timeout=5)

    with db() as session:
        outcomes = dict(session.execute(
            select(OrderLine.fulfilment, func.count()).group_by(OrderLine.fulfilment)).all())  # type: ignore[arg-type]
    print(f"\nstock race: {outcomes}, lowest stock seen {lowest[0]}")
    assert outcomes == {"reserved": 50, "backordered": 150}
    assert stock_of(db)["tee"] == 0
    assert lowest[0] >= 0, "stock never negative"
    assert tally(db, []).deliveries == {"succeeded": 200}
