"""Fault 2: a message that kills its worker process every time (celery#9082).

Late acks + reject-on-worker-lost hand such a message out again without limit;
the delivery record counts the runs and dead-letters it after the policy's
attempts, and the same worker goes on with the next message.
"""

from __future__ import annotations

import json
import time

from kombu import Queue

from tasks.publisher import publish_events
from tests.support.orders import deliveries_of, outbox_event, place
from tests.support.poison import POISON_QUEUE, POISON_TASK
from tests.support.waiting import wait_until

MAX_RETRIES = 1  # so the handler may run max_retries + 1 = 2 times


def test_poison_message_becomes_dead_letter_after_capped_runs_and_worker_goes_on(
    procs, db, owned_redis, publisher, tmp_path
):
    policies = {"poison": {"max_retries": MAX_RETRIES, "backoff_base": 0.2, "backoff_max": 1.0}}
    worker = procs.worker(f"{POISON_QUEUE},analytics", app="tests.support.poison_worker",
                          ORDERFLOW_RETRY_POLICIES=json.dumps(policies))
    runs_file = tmp_path / "runs.txt"
    event_id = "poison-" + str(time.time_ns())

    publisher.send_task(POISON_TASK, args=[event_id, {"runs_file": str(runs_file)}],
                        task_id=f"{event_id}:poison", queue=Queue(POISON_QUEUE))

    dead = wait_until(lambda: (d := deliveries_of(db, event_id).get("poison")) and d.state == "dead" and d,
                      timeout=60, interval=0.2, message="poison message dead-lettered")
    runs = runs_file.read_text().split()
    assert len(runs) == MAX_RETRIES + 1, "the handler ran exactly as often as the policy allows"
    assert len(set(runs)) == len(runs), "each run killed its process; a new one took over"
    assert dead.attempts == MAX_RETRIES + 2  # the last delivery was refused before running
    assert "GaveUp" in dead.last_error and "limit is 2" in dead.last_error

    # No loop: nothing left in Redis for it, and it never runs again.
    redis = owned_redis.client()
    wait_until(lambda: redis.llen(POISON_QUEUE) == 0 and redis.hlen("unacked") == 0, timeout=10,
               message="poison message gone from Redis")
    time.sleep(1.5)
    assert len(runs_file.read_text().split()) == MAX_RETRIES + 1
    assert worker.alive()

    # The same worker still does real work.
    placed = place(db)
    publish_events(publisher, [outbox_event(db, placed.event_id)])
    wait_until(lambda: (d := deliveries_of(db, placed.event_id).get("analytics")) and d.state == "succeeded",
               timeout=30, message="the next good message is processed")


def test_a_poison_delivery_in_a_batch_does_not_take_the_others_with_it(
    procs, db, owned_redis, publisher, tmp_path
):
    """The batch dies with its worker; it comes back and is split into single deliveries: the
    good ones succeed, the poison one alone uses up its attempts and becomes a dead letter."""
    policies = {"poison": {"max_retries": MAX_RETRIES, "backoff_base": 0.2, "backoff_max": 1.0}}
    worker = procs.worker(POISON_QUEUE, app="tests.support.poison_worker",
                          ORDERFLOW_RETRY_POLICIES=json.dumps(policies))
    stamp = time.time_ns()
    good_first, poison, good_last = (f"{name}-{stamp}" for name in ("good1", "poison", "good2"))
    runs = {e: tmp_path / f"{e}.runs" for e in (good_first, poison, good_last)}
    batch = [[e, {"runs_file": str(runs[e]), "poison": e == poison}] for e in (good_first, poison, good_last)]

    publisher.send_task(POISON_TASK, kwargs={"batch": batch}, task_id=f"batch-{stamp}:poison",
                        queue=Queue(POISON_QUEUE))

    def final() -> dict[str, str] | None:
        found = {e: (d.state if (d := deliveries_of(db, e).get("poison")) else "") for e in runs}
        return found if all(s in ("succeeded", "dead") for s in found.values()) else None

    states = wait_until(final, timeout=60, interval=0.2, message="every delivery of the batch final")
    assert states == {good_first: "succeeded", poison: "dead", good_last: "succeeded"}
    # The poison handler ran as often as the policy allows: once in the batch, once alone.
    assert len(runs[poison].read_text().split()) == MAX_RETRIES + 1
    # The delivery before it ran in the batch (rolled back with the dead process) and again
    # alone; the one after it never ran in the batch.
    assert len(runs[good_first].read_text().split()) == 2
    assert len(runs[good_last].read_text().split()) == 1
    assert {e: deliveries_of(db, e)["poison"].attempts for e in (good_first, good_last)} == {
        good_first: 2, good_last: 2}
    assert worker.alive()
