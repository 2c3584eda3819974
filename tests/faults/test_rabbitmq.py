"""The faults on RabbitMQ: what differs from Redis is that an unacked message comes back the
moment its connection closes (no visibility timeout, no reconciler needed), and that durable
quorum queues keep their messages across a broker-side disconnect.

An outage is made on this test's own vhost only (permissions cleared and its connections
closed with rabbitmqctl): the shared RabbitMQ other test runs use keeps running.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from outbox.db import SessionFactory
from tests.faults.conftest import row_locked
from tests.faults.test_redis_outage import mug_order
from tests.support.http import place_many
from tests.support.orders import deliveries_of, place, stock
from tests.support.processes import OwnedRedis, Processes, process_env
from tests.support.rabbitmq import allow, close_connections, deny, fresh_vhost, queue_lengths
from tests.support.tally import settled, tally
from tests.support.waiting import wait_until

CONSUMERS = ("email", "inventory", "analytics")


@pytest.fixture
def vhost_url() -> Iterator[str]:
    with fresh_vhost("orderflow_fault") as url:
        yield url


@pytest.fixture
def rabbit_procs(tmp_path: Path, db: SessionFactory, pg_url: str, vhost_url: str,
                 mail_sink, owned_redis: OwnedRedis) -> Iterator[Processes]:
    # REDIS_URL points at a Redis that is then stopped: nothing may need it beside RabbitMQ.
    owned_redis.kill()
    processes = Processes(tmp_path / "logs", process_env(
        database_url=pg_url, redis_url=owned_redis.url, smtp_url=mail_sink.url,
        BROKER_URL=vhost_url, BROKER_HEARTBEAT="5"))
    yield processes
    processes.stop_all()


def vhost_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_whole_worker_killed_mid_delivery_its_message_returns_at_once_and_runs_once(
    rabbit_procs, db, pg_url, mail_sink
):
    procs = rabbit_procs
    procs.relay(RECONCILE_AFTER_SECONDS="600")  # the reconciler cannot be what saves it
    worker = procs.worker("inventory")
    before = stock(db, "mug")
    with row_locked(pg_url, "mug"):
        placed = place(db)
        wait_until(lambda: deliveries_of(db, placed.event_id).get("inventory") and
                   deliveries_of(db, placed.event_id)["inventory"].state == "running", timeout=30,
                   message="inventory in the middle of its stock update")
        worker.kill_group(signal.SIGKILL)  # the host is gone: no reject, no ack
        worker.popen.wait(timeout=10)
    killed_at = time.monotonic()
    procs.worker("inventory")
    wait_until(lambda: deliveries_of(db, placed.event_id)["inventory"].state == "succeeded",
               timeout=60, message="inventory completed by the new worker")
    print(f"\nrabbitmq: killed worker's message redelivered and done in {time.monotonic() - killed_at:.1f}s")
    assert deliveries_of(db, placed.event_id)["inventory"].attempts == 2
    assert stock(db, "mug") == before - 2, "stock taken exactly once"
    assert "reconciler republished" not in procs.logs()


def test_broker_down_while_orders_are_placed_then_each_delivery_once(
    rabbit_procs, db, vhost_url, mail_sink
):
    procs = rabbit_procs
    web = procs.web()
    procs.relay()
    for consumer in CONSUMERS:
        procs.worker(consumer)
    deny(vhost_of(vhost_url))  # this vhost refuses every client: an outage for this test only

    answers = place_many(web, 20, make=mug_order)

    assert [a.status for a in answers] == [201] * 20
    assert tally(db, []).unpublished == 20, "nothing could be published while the broker was away"
    allow(vhost_of(vhost_url))
    started = time.monotonic()
    wait_until(lambda: settled(db, 60), timeout=120, interval=0.25, message="60 deliveries final")
    figures = tally(db, mail_sink.messages())
    print(f"\nrabbitmq outage: {figures} recovered in {time.monotonic() - started:.1f}s")
    assert figures.deliveries == {"succeeded": 60}
    assert figures.emails == 20 and figures.duplicate_emails == 0
    assert figures.revenue_rows == 20


def test_connections_cut_under_queued_messages_lose_nothing_without_the_reconciler(
    rabbit_procs, db, vhost_url, mail_sink
):
    procs = rabbit_procs
    web = procs.web()
    procs.relay(RECONCILE_AFTER_SECONDS="600")
    procs.worker("inventory")  # email has no worker yet: its messages wait in its quorum queue
    answers = place_many(web, 10, make=mug_order)
    assert {a.status for a in answers} == {201}
    wait_until(lambda: settled(db, 10), timeout=30, message="inventory delivered")
    # (Fewer than 10 messages: the relay may pack events that piled up into one.)
    wait_until(lambda: queue_lengths(vhost_url).get("email", 0) >= 1, timeout=30,
               message="email messages queued")
    close_connections(vhost_of(vhost_url))  # what a broker restart looks like to the clients
    procs.worker("email")
    procs.worker("analytics")
    wait_until(lambda: settled(db, 30), timeout=90, interval=0.25, message="30 deliveries final")
    figures = tally(db, mail_sink.messages())
    assert figures.deliveries == {"succeeded": 30}
    assert figures.emails == 10 and figures.duplicate_emails == 0
    assert "reconciler republished" not in procs.logs()
