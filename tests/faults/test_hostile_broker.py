"""Hostile input on the broker: messages nobody should run are refused and logged, and the
worker goes on with the next good message."""

from __future__ import annotations

import json
import pickle
import uuid

from kombu import Connection

from tasks.publisher import publish_events
from tests.support.orders import deliveries_of, outbox_event, place
from tests.support.waiting import wait_until

TASK = "orders.analytics.record_revenue"


def celery_headers(task: str) -> dict:
    task_id = f"hostile-{uuid.uuid4().hex[:8]}"
    return {"lang": "py", "task": task, "id": task_id, "root_id": task_id, "parent_id": None,
            "group": None, "retries": 0, "eta": None, "expires": None, "argsrepr": "", "kwargsrepr": ""}


def push_raw(url: str, body: bytes, *, content_type: str, headers: dict) -> None:
    """Straight onto the consumer's queue with kombu, as an attacker or a buggy producer would."""
    with Connection(url) as connection:
        connection.Producer().publish(body, exchange="", routing_key="analytics", headers=headers,
                                      content_type=content_type, content_encoding="binary")


def test_pickle_garbage_and_unknown_task_are_refused_and_the_next_message_still_runs(
    procs, db, owned_redis, publisher
):
    worker = procs.worker("analytics")
    placed = place(db)
    event = outbox_event(db, placed.event_id)
    args = ((placed.event_id, event.payload), {}, {})
    pickled_event = str(uuid.uuid4())  # its own event: had it run, it would leave a delivery record

    push_raw(owned_redis.url, pickle.dumps(((pickled_event, event.payload), {}, {})),
             content_type="application/x-python-serialize",
             headers=celery_headers(TASK))
    push_raw(owned_redis.url, b"\x00\xff{{{ not json", content_type="application/json",
             headers=celery_headers(TASK))
    push_raw(owned_redis.url, json.dumps(args).encode(), content_type="application/json",
             headers=celery_headers("orders.nobody.listens"))
    publish_events(publisher, [event])  # the good one, behind the three bad ones

    wait_until(lambda: (d := deliveries_of(db, placed.event_id).get("analytics")) and d.state == "succeeded",
               timeout=30, message="the good message delivered")
    log = worker.text()
    assert "Refusing to deserialize untrusted content of type pickle" in log
    assert "Can't decode message body" in log or "DecodeError" in log
    assert "Received unregistered task of type 'orders.nobody.listens'" in log
    redis = owned_redis.client()
    # The record commits before the task returns and the late ack follows it: wait for the ack.
    wait_until(lambda: redis.llen("analytics") == 0 and redis.hlen("unacked") == 0, timeout=10,
               message="nothing stuck or requeued")
    assert deliveries_of(db, pickled_event) == {}, "the pickled message never ran"
    assert deliveries_of(db, placed.event_id)["analytics"].attempts == 1
    assert worker.alive()
