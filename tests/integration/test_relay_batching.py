"""The relay, as it runs: while the consumers are behind, what piles up goes out together."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading

import redis

from tasks import relay
from tasks.backlog import consumers_behind
from tasks.runtime import Runtime
from tests.support.orders import outbox_event, place
from tests.support.redis_server import flush
from tests.support.waiting import wait_until

LINGER = 2.0  # long enough to place three orders in, even on a loaded machine


def queued_task_ids(redis_url: str, queue: str) -> list[str]:
    """Task ids of the messages waiting in `queue`, oldest first (kombu LPUSHes, workers BRPOP)."""
    raw = redis.Redis.from_url(redis_url).lrange(queue, 0, -1)
    return [json.loads(message)["headers"]["id"] for message in reversed(raw)]


def batch_of(redis_url: str, queue: str, task_id: str) -> list[str]:
    for message in redis.Redis.from_url(redis_url).lrange(queue, 0, -1):
        envelope = json.loads(message)
        if envelope["headers"]["id"] == task_id:
            _args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            return [event_id for event_id, _payload in kwargs["batch"]]
    raise AssertionError(f"no message {task_id} in {queue}")


def test_consumers_are_behind_while_their_queues_hold_messages(redis_url):
    flush(redis_url)
    assert not consumers_behind(redis_url, ["email", "inventory"])
    redis.Redis.from_url(redis_url).lpush("inventory", b"{}")
    assert consumers_behind(redis_url, ["email", "inventory"])
    assert not consumers_behind("redis://127.0.0.1:1/0", ["email"])  # no answer: no linger


def test_while_consumers_are_behind_the_relay_sends_piled_up_events_in_one_message(
    celery_app, runtime, redis_url
):
    flush(redis_url)  # no worker runs: whatever is published stays queued, the consumers are behind
    lingering = Runtime(dataclasses.replace(runtime.settings, relay_linger_seconds=LINGER),
                        runtime.session_factory)
    stop = threading.Event()
    running = threading.Thread(target=relay.run, args=(celery_app, lingering, stop), daemon=True)
    running.start()
    try:
        first = place(runtime.session_factory).event_id
        wait_until(lambda: outbox_event(runtime.session_factory, first).published_at)  # type: ignore[union-attr]
        # The relay now lingers (its messages wait unconsumed): these three pile up meanwhile.
        later = [place(runtime.session_factory).event_id for _ in range(3)]
        wait_until(lambda: all(outbox_event(runtime.session_factory, e).published_at  # type: ignore[union-attr]
                               for e in later), timeout=LINGER + 10)
    finally:
        stop.set()
        running.join(timeout=10)

    for queue in ("email", "inventory", "analytics"):
        ids = queued_task_ids(redis_url, queue)
        assert len(ids) == 2, ids
        assert ids[0] == f"{first}:{queue}"  # the first event went at once, alone
        assert batch_of(redis_url, queue, ids[1]) == later  # the rest in one message, in order


def test_consumers_are_behind_on_rabbitmq_from_the_queues_message_counts(rabbitmq_vhost):
    from kombu import Connection, Exchange, Queue

    from tests.support.rabbitmq import purge

    purge(rabbitmq_vhost, ["email", "inventory"])
    assert not consumers_behind(rabbitmq_vhost, ["no-such-queue"])  # a passive declare never creates
    with Connection(rabbitmq_vhost) as conn:
        exchange = Exchange("orderflow", type="topic", durable=True)
        queue = Queue("inventory", exchange, routing_key="inventory", durable=True,
                      queue_arguments={"x-queue-type": "quorum"})
        queue.bind(conn.default_channel).declare()
        assert not consumers_behind(rabbitmq_vhost, ["inventory"])
        conn.Producer().publish({}, exchange=exchange, routing_key="inventory", declare=[queue])
    wait_until(lambda: consumers_behind(rabbitmq_vhost, ["inventory"]), timeout=5)
    purge(rabbitmq_vhost, ["inventory"])
    assert not consumers_behind(rabbitmq_vhost, ["inventory"])
