"""The whole system as `make run` starts it: the supervisor, the Procfile, real processes, HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT
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
    streamed = {i.data["consumer"]: i.data["state"] for i in items if i.kind == "message"}
    assert {c: streamed[c] for c in states} == states
    # On through the shipping service (its own database and relay): shipped, and its mail.
    shipped = wait_until(lambda: (lambda order: order if order["status"] == "shipped" else None)(
        http_json("GET", f"{system.web}/orders/{order_id}")[1]["order"]), timeout=60, interval=0.2)
    assert [e["type"] for e in shipped["events"]] == ["order.created", "order.reserved", "shipment.booked",
                                                      "order.shipped"]
    assert shipped["events"][1]["deliveries"] == {"shipping": shipped["events"][1]["deliveries"]["shipping"]}
    assert shipped["events"][1]["deliveries"]["shipping"]["state"] == "succeeded"
    mails = wait_until(lambda: system.mail() if len(system.mail()) == 2 else None, timeout=30)
    assert sum(f"Your order {order_id} is confirmed" in m for m in mails) == 1
    assert sum(f"Your order {order_id} has shipped" in m for m in mails) == 1

def test_the_command_line_finds_the_running_system_with_nothing_exported(system: LocalRun):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "SMTP_URL")}
    env["ORDERFLOW_VAR_DIR"] = str(system.var_dir)

    def orderflow(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", *argv], cwd=PROJECT_ROOT, env=env, text=True,
                              capture_output=True, timeout=60)

    status = orderflow("status")
    assert status.returncode == 0, status.stderr
    assert "is ready" in status.stdout and "embedded PostgreSQL" in status.stdout
    for name in ("web", "relay", "shipping_relay", "email", "inventory", "analytics", "customer_mail",
                 "fulfilment", "shipping", "flower", "stream", "postgres", "redis"):
        assert any(line.startswith(name) and " ready " in line for line in status.stdout.splitlines()), (
            name, status.stdout)

    listed = orderflow("dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    assert "using the system make run started" in listed.stderr and "postgresql" in listed.stderr
    assert listed.stdout.strip() == "no dead deliveries match"
