"""`make run` on a fresh machine: PostgreSQL, ready summary last, and a process killed is back.

One system for the module (started as `make run` starts it, with nothing
configured); each test leaves it as it found it: every process up and ready.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator

import psutil
import pytest

from devtools.summary import READY_LINE
from tests.support.local_run import LocalRun, http_json, local_run
from tests.support.orders import order_input
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRun]:
    with local_run(tmp_path_factory.mktemp("make-run")) as run:
        run.output_when_ready = run.output()  # type: ignore[attr-defined]
        yield run


def place_and_wait_delivered(run: LocalRun) -> tuple[str, str]:
    """An order over HTTP, delivered to every consumer, its mail in var/mail: (order id, event id)."""
    status, created = http_json("POST", f"{run.web}/orders", order_input())
    assert status == 201, created
    order_id = created["order"]["id"]

    def delivered() -> dict | None:
        _, body = http_json("GET", f"{run.web}/orders/{order_id}")
        states = {c: d["state"] for c, d in body["order"]["events"][0]["deliveries"].items()}
        return states if set(states.values()) == {"succeeded"} else None

    try:
        wait_until(delivered, timeout=30, interval=0.1, message=f"order {order_id} delivered")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{run.output()[-5000:]}") from None
    assert any(f"Your order {order_id} is confirmed" in mail for mail in run.mail())
    return order_id, created["event_id"]


def test_ready_summary_comes_last_and_the_database_is_an_embedded_postgresql(running: LocalRun):
    output = running.output_when_ready  # type: ignore[attr-defined]
    after_ready = output.split(READY_LINE, 1)[1].strip().splitlines()
    # Nothing of the start-up (worker banners, "ready." lines) comes after the summary.
    assert [line.split()[0] for line in after_ready] == [
        "web", "operator", "streams", "flower", "flower", "operator", "broker", "database", "shipping",
        "smtp", "cli", "stop"]
    [shipping] = [line for line in after_ready if line.startswith("shipping ")]
    assert "/orderflow_shipping" in shipping  # its own database, on the same embedded server
    system = running.system()
    assert system.ready and system.database_url.startswith("postgresql://postgres@127.0.0.1:")
    server = psutil.Process(system.processes["postgres"].pid)
    assert server.name() == "postgres" and str(running.var_dir / "postgres") in server.cmdline()


def test_events_are_published_by_the_relay_woken_by_notify(running: LocalRun):
    _, event_id = place_and_wait_delivered(running)
    output = running.output()
    assert "relay: listening for orderflow_outbox" in output
    assert re.search(rf"relay published 1 event\(s\): {event_id}", output), output[-3000:]


@pytest.mark.parametrize("name", ["email", "relay"])
def test_a_killed_process_is_back_within_30s_the_others_never_stop(running: LocalRun, name: str):
    before = running.system().processes
    assert all(p.ready and p.alive for p in before.values()), before
    victim = before[name]
    assert victim.pid is not None

    killed_at = time.monotonic()
    os.kill(victim.pid, signal.SIGKILL)  # the main process only, as `kill -9 <pid>` does

    def back() -> bool:
        now = running.system().processes[name]
        return now.pid != victim.pid and now.ready and now.alive

    wait_until(back, timeout=30, interval=0.1, message=f"{name} back after SIGKILL")
    took = time.monotonic() - killed_at

    after = running.system().processes
    assert after[name].restarts == victim.restarts + 1
    assert {n: (p.pid, p.restarts) for n, p in after.items() if n != name} == {
        n: (p.pid, p.restarts) for n, p in before.items() if n != name}
    assert all(p.alive for p in after.values())
    lines = [ln for ln in running.output().splitlines() if f"{name} was killed by SIGKILL" in ln]
    assert len(lines) == 1 and "restarting in 1s" in lines[0], lines
    assert took < 30

    place_and_wait_delivered(running)  # the next order still gets everything, its mail included
