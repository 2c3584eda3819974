"""Publisher confirms on RabbitMQ, pipelined (tasks/confirms.py): a relay pass publishes all its
messages, then waits once for their confirms; a refused message keeps its events unpublished.

The refusal is real: a policy gives the email queue a maximum length of 0 with
`overflow: reject-publish`, so RabbitMQ nacks every message sent to it. On classic
queues (RABBITMQ_QUEUE_TYPE=classic, in a vhost of this module's own): a quorum
queue applies its limit one message late (the first message past it is taken,
checked on RabbitMQ 3.10), which would make the count of refusals a race.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import amqp
import pytest
from kombu import Connection

from config.settings import Settings
from tasks import runtime as runtime_module
from tasks.confirms import Unconfirmed
from tasks.relay import relay_once
from tests.support.orders import outbox_event, place
from tests.support.rabbitmq import close_connections, ctl, fresh_vhost, purge
from tests.support.waiting import wait_until

CONSUMERS = ["email", "inventory", "analytics"]


@pytest.fixture(scope="module")
def classic_vhost() -> Iterator[str]:
    with fresh_vhost("orderflow_confirms") as url:
        yield url


@pytest.fixture
def broker_url(classic_vhost: str) -> str:
    """This module runs on RabbitMQ only (it replaces the broker parameter)."""
    return classic_vhost


@pytest.fixture
def broker_settings(broker_url: str, redis_url: str) -> Settings:
    return Settings(database_url="", redis_url=redis_url, broker_url=broker_url, broker_heartbeat=4,
                    rabbitmq_queue_type="classic")


@pytest.fixture
def one_per_message(runtime: runtime_module.Runtime) -> runtime_module.Runtime:
    """One message per delivery, so that the queues' lengths count deliveries."""
    return runtime_module.change_settings(dataclasses.replace(runtime.settings, delivery_batch_max=1))


@pytest.fixture
def empty_queues(classic_vhost: str, celery_app) -> Iterator[None]:  # type: ignore[no-untyped-def]
    purge(classic_vhost, CONSUMERS)
    yield
    purge(classic_vhost, CONSUMERS)


@pytest.fixture
def confirms_awaited_one_by_one(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the publishes that wait for their own confirm (py-amqp's publish-and-wait);
    channels made from now on use the counting version."""
    calls: list[int] = []
    original = amqp.Channel.basic_publish_confirm

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(amqp.Channel, "basic_publish_confirm", counting)
    return calls


def queued(vhost_url: str) -> dict[str, int]:
    """Messages ready in each consumer's queue, as the broker counts them now (a passive
    declare: rabbitmqctl's figures for quorum queues lag by seconds)."""
    with Connection(vhost_url, connect_timeout=5) as conn:
        channel = conn.channel()
        return {q: channel.queue_declare(queue=q, passive=True).message_count for q in CONSUMERS}


def running_connections() -> list[list[str]]:
    listed = ctl("list_connections", "vhost", "state", "--no-table-headers").stdout
    return [line.split() for line in listed.splitlines()]


def unpublished(runtime: runtime_module.Runtime, event_ids: list[str]) -> list[str]:
    return [e for e in event_ids if outbox_event(runtime.session_factory, e).published_at is None]  # type: ignore[union-attr]


def test_a_relay_pass_waits_once_for_all_its_confirms(
    one_per_message, celery_app, classic_vhost, empty_queues, confirms_awaited_one_by_one
):
    events = [place(one_per_message.session_factory).event_id for _ in range(20)]

    assert relay_once(celery_app, one_per_message, grace_seconds=0) == 20

    assert unpublished(one_per_message, events) == []
    assert queued(classic_vhost) == {q: 20 for q in CONSUMERS}
    # 60 messages and their 60 task-sent events went out without one waiting for its confirm.
    assert confirms_awaited_one_by_one == []


def test_a_nacked_message_keeps_its_events_unpublished_until_the_queue_takes_it(
    one_per_message, celery_app, classic_vhost, empty_queues
):
    vhost = classic_vhost.rsplit("/", 1)[1]
    events = [place(one_per_message.session_factory).event_id for _ in range(5)]
    ctl("set_policy", "-p", vhost, "--apply-to", "queues", "email-full", "^email$",
        json.dumps({"max-length": 0, "overflow": "reject-publish"}))
    try:
        with pytest.raises(Unconfirmed, match="refused 5 message"):
            relay_once(celery_app, one_per_message, grace_seconds=0)
        assert unpublished(one_per_message, events) == events, "a refused publish marks nothing published"
    finally:
        ctl("clear_policy", "-p", vhost, "email-full")

    assert relay_once(celery_app, one_per_message, grace_seconds=0) == 5

    assert unpublished(one_per_message, events) == []
    # email took its 5 messages the second time; inventory and analytics took theirs twice
    # (at least once: each delivery's record makes the second copy harmless).
    assert queued(classic_vhost) == {
        "email": 5, "inventory": 10, "analytics": 10}


def test_a_pass_after_the_broker_dropped_the_idle_connection_publishes_at_once(
    one_per_message, celery_app, classic_vhost, empty_queues
):
    """RabbitMQ closes a connection whose heartbeats stopped, as an idle relay's do: the next
    pass finds it closed and reconnects, instead of failing once and waiting for a retry."""
    first = [place(one_per_message.session_factory).event_id for _ in range(2)]
    assert relay_once(celery_app, one_per_message, grace_seconds=0) == 2
    vhost = classic_vhost.rsplit("/", 1)[1]
    close_connections(vhost)
    wait_until(lambda: [vhost, "running"] not in running_connections(), timeout=10,
               message="the broker closed the relay's connection (it waits for the relay to answer)")
    later = [place(one_per_message.session_factory).event_id for _ in range(3)]

    assert relay_once(celery_app, one_per_message, grace_seconds=0) == 3

    assert unpublished(one_per_message, first + later) == []
    assert queued(classic_vhost) == {q: 5 for q in CONSUMERS}
