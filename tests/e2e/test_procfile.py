"""The whole system as `make run` starts it: the supervisor, the Procfile, real processes, HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.local_run import LocalRun, http_json, local_run
from tests.support.orders import order_input
from tests.support.sse import read_until_end
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def system(tmp_path: Path) -> Iterator[LocalRun]:
    """`python -m devtools.run` (what `make run` runs) on a fresh machine: no REDIS_URL, no SMTP_URL,
    no DATABASE_URL; stopped by SIGTERM at the end, which must leave no process behind."""
    with local_run(tmp_path) as run:
        yield run


def test_order_over_http_is_delivered_to_every_consumer(system: LocalRun):
    status, created = http_json("POST", f"{system.web}/orders", order_input())
    assert status == 201, created
    order_id = created["order"]["id"]

    def deliveries() -> dict | None:
        _, body = http_json("GET", f"{system.web}/orders/{order_id}")
        states = {c: d["state"] for c, d in body["order"]["events"][0]["deliveries"].items()}
        return states if set(states.values()) == {"succeeded"} else None

    try:
        states = wait_until(deliveries, timeout=60, interval=0.2)
    except AssertionError:
        raise AssertionError(system.output()[-5000:]) from None
    assert states == {"email": "succeeded", "inventory": "succeeded", "analytics": "succeeded"}
    # The live status, from the stream server `make run` started beside gunicorn.
    items = read_until_end(f"{system.streams}/orders/{order_id}/events", timeout=20)
    assert [i.kind for i in items][-1] == "end"
    assert {i.data["consumer"]: i.data["state"] for i in items if i.kind == "message"} == states
    [mail] = system.mail()
    assert f"Your order {order_id} is confirmed" in mail