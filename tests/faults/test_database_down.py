"""Fault 5: the database becomes unavailable (a proxy in front of PostgreSQL is cut).

The API answers 503 JSON; consumers keep retrying instead of dead-lettering;
when the database is back, every delivery completes once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from orders.queries import list_products
from tests.support.http import http_json, place_many
from tests.support.orders import order_input
from tests.support.tally import settled, tally
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

CONSUMERS = ("email", "inventory", "analytics")


@pytest.fixture
def db_proxy(pg_url: str) -> Iterator[TcpProxy]:
    proxy = TcpProxy(make_url(pg_url).port or 5432).start()
    yield proxy
    proxy.close()


@pytest.fixture
def process_database_url(pg_url: str, db_proxy: TcpProxy) -> str:
    return make_url(pg_url).set(port=db_proxy.port).render_as_string(hide_password=False)


def test_database_down_api_503_consumers_retry_then_everything_completes(
    procs, db, db_proxy, mail_sink
):
    web = procs.web()
    procs.relay()
    assert {a.status for a in place_many(web, 10, threads=4)} == {201}
    wait_until(lambda: tally(db, []).unpublished == 0, timeout=30, message="events published")

    db_proxy.down()

    for answer in (http_json("GET", f"{web}/products"), http_json("POST", f"{web}/orders", order_input())):
        assert answer.status == 503, answer
        assert answer.body["error"]["code"] == "database_unavailable"
        assert answer.seconds < 10
    workers = [procs.worker(c) for c in CONSUMERS]  # they take the queued messages: the database is away
    # Keep the outage short: each retry waits longer (jittered, doubling up to 60 s).
    wait_until(lambda: all(w.text().count("database unavailable, retry in") >= 2 for w in workers),
               timeout=45, message="every consumer retrying while the database is down")
    assert tally(db, []).deliveries == {}, "nothing was recorded, nothing dead-lettered"

    db_proxy.up()

    states = wait_until(lambda: settled(db, 30), timeout=90, interval=0.25, message="30 deliveries final")
    assert states == {"succeeded": 30}
    figures = tally(db, mail_sink.messages())
    assert figures.emails == 10 and figures.duplicate_emails == 0 and figures.revenue_rows == 10
    assert {p["sku"]: p["stock"] for p in list_products(db)}["mug"] == 100 - 2 * 10
    assert http_json("POST", f"{web}/orders", order_input()).status == 201
