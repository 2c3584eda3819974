"""Fault 1: a worker SIGKILLed in the middle of a consumer's work.

The email worker is killed while the SMTP server holds it before accepting the
message; the inventory worker while its stock UPDATE waits on a row lock. A new
worker process completes both, and each effect happens once.
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.faults.conftest import row_locked
from tests.support.orders import deliveries_of, place, stock
from tests.support.tally import emails_per_event
from tests.support.waiting import wait_until

CONSUMERS = ("email", "inventory")


def states_if(db, event_id: str, wanted: set[str]) -> dict[str, str] | None:
    current = {c: d.state for c, d in deliveries_of(db, event_id).items() if c in CONSUMERS}
    return current if len(current) == len(CONSUMERS) and set(current.values()) <= wanted else None


@pytest.mark.parametrize(
    ("victim", "reconcile_after"),
    [
        # The process running the task dies (OOM killer, segfault): the worker
        # rejects the message, Redis hands it out again at once.
        ("pool-child", "600"),
        # The whole worker dies (host lost): the message stays unacked in Redis for
        # the visibility timeout (an hour); the reconciler republishes it.
        ("whole-worker", "10"),
    ],
)
def test_worker_killed_mid_delivery_completes_once_in_a_new_worker(
    victim, reconcile_after, procs, db, pg_url, mail_sink, stalling
):
    procs.relay(RECONCILE_AFTER_SECONDS=reconcile_after)
    workers = {c: procs.worker(c) for c in CONSUMERS}
    before = stock(db, "mug")

    stalling.open.clear()
    with row_locked(pg_url, "mug"):
        placed = place(db)  # quantity 2 of "mug"; the relay publishes it
        wait_until(lambda: states_if(db, placed.event_id, {"running"}), timeout=30,
                   message="both consumers in the middle of their work")
        for name, worker in workers.items():
            if victim == "pool-child":
                [child] = worker.children()
                os.kill(child, signal.SIGKILL)
            else:
                worker.kill_group(signal.SIGKILL)
                worker.popen.wait(timeout=10)
                workers[name] = procs.worker(name)
    stalling.open.set()

    final = wait_until(lambda: states_if(db, placed.event_id, {"succeeded", "dead"}), timeout=60,
                       message="deliveries final after the kill")
    assert final == {"email": "succeeded", "inventory": "succeeded"}
    records = deliveries_of(db, placed.event_id)
    assert records["email"].attempts == records["inventory"].attempts == 2
    assert stock(db, "mug") == before - 2, "stock taken exactly once"
    assert emails_per_event(mail_sink.messages()) == {placed.event_id: 1}, "exactly one email"
    if victim == "whole-worker":
        assert "reconciler republished" in procs.logs()
