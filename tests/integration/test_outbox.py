"""The outbox: no lost events when the broker or the publisher fails after commit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from celery import Celery

from config.settings import Settings
from orders.seed import seed_products
from tasks.fast_path import AfterCommitPublisher
from tests.support.orders import all_final, order_input, outbox_event, place
from tests.support.waiting import wait_until
from web import create_app


def test_broker_unreachable_order_still_201_and_relay_delivers_later(
    celery_app, runtime, settings, worker
):
    # A producer whose broker refuses connections: port 1 on loopback.
    unreachable = Celery("orderflow-down")
    unreachable.config_from_object("celeryconfig")
    unreachable.conf.broker_url = "redis://127.0.0.1:1/0"
    fast_path = AfterCommitPublisher(unreachable, runtime.session_factory)
    api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": fast_path}).test_client()

    started = time.monotonic()
    response = api.post("/orders", json=order_input())
    elapsed = time.monotonic() - started

    assert response.status_code == 201, response.json
    assert elapsed < 1.0, "the request must not wait for the broker"
    event_id = response.json["event_id"]
    assert fast_path.drain(timeout=15)
    assert outbox_event(runtime.session_factory, event_id).published_at is None

    # The relay, talking to the real broker, sends what the fast path could not.
    from tasks.relay import relay_once

    assert relay_once(celery_app, runtime, grace_seconds=0) == 1
    final = wait_until(lambda: all_final(runtime.session_factory, event_id))
    assert set(final.values()) == {"succeeded"}


def test_fast_path_publishes_right_after_commit(celery_app, runtime, settings, worker):
    fast_path = AfterCommitPublisher(celery_app, runtime.session_factory)
    api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": fast_path}).test_client()

    response = api.post("/orders", json=order_input())

    event_id = response.json["event_id"]
    final = wait_until(lambda: all_final(runtime.session_factory, event_id))
    assert set(final.values()) == {"succeeded"}
    assert outbox_event(runtime.session_factory, event_id).published_at is not None


@pytest.mark.both_brokers
def test_crash_between_commit_and_publish_is_delivered_by_relay_process(
    runtime, settings, worker, redis_url, celery_app
):
    # after_commit=None: the process "died" right after its commit, before publishing.
    placed = place(runtime.session_factory, after_commit=None)
    assert outbox_event(runtime.session_factory, placed.event_id).published_at is None

    relay = subprocess.Popen(
        [sys.executable, "-m", "tasks.relay"],
        env={**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": redis_url,
             "BROKER_URL": settings.broker_url, "RELAY_GRACE_SECONDS": "0", "RELAY_POLL_SECONDS": "0.1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        final = wait_until(lambda: all_final(runtime.session_factory, placed.event_id), timeout=30)
    finally:
        relay.send_signal(signal.SIGTERM)
        output = relay.communicate(timeout=15)[0].decode()
    assert set(final.values()) == {"succeeded"}, output
    assert relay.returncode == 0, output
    assert outbox_event(runtime.session_factory, placed.event_id).published_at is not None


def test_relay_killed_mid_publish_loses_nothing(runtime, settings, worker, redis_url, celery_app):
    """SIGKILL the relay while it holds a batch; a new relay still delivers every event."""
    placed = [place(runtime.session_factory, after_commit=None) for _ in range(20)]
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": redis_url,
           "RELAY_GRACE_SECONDS": "0", "RELAY_POLL_SECONDS": "0.1", "RELAY_BATCH_SIZE": "5"}

    first = subprocess.Popen([sys.executable, "-m", "tasks.relay"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: any(outbox_event(runtime.session_factory, p.event_id).published_at
                           for p in placed), timeout=30, message="first relay published something")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = subprocess.Popen([sys.executable, "-m", "tasks.relay"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for order in placed:
            final = wait_until(lambda o=order: all_final(runtime.session_factory, o.event_id),
                               timeout=60)
            assert set(final.values()) == {"succeeded"}
    finally:
        second.terminate()
        second.wait(timeout=15)


@pytest.mark.postgres
def test_concurrent_relays_on_postgres_publish_each_event_once(monkeypatch, tmp_path, redis_url):
    """Three relays draining one outbox at once: SKIP LOCKED hands each row to exactly one."""
    from tasks import relay
    from tasks import runtime as runtime_module
    from tests.support.databases import fresh_database

    with fresh_database("postgres", tmp_path) as url:
        rt = runtime_module.configure(Settings(database_url=url, redis_url=redis_url,
                                               relay_batch_size=5))
        seed_products(rt.session_factory)
        placed = [place(rt.session_factory, after_commit=None) for _ in range(60)]
        published: list[str] = []
        lock = threading.Lock()

        def counting_publish(_app, events, **_options):
            time.sleep(0.01)  # hold the row locks a little, as a real publish does
            with lock:
                published.extend(e.id for e in events)
            return len(events)

        monkeypatch.setattr(relay, "publish_events", counting_publish)

        def drain() -> None:
            while relay.relay_once(None, rt, grace_seconds=0):
                pass

        threads = [threading.Thread(target=drain) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        rt.session_factory.kw["bind"].dispose()

    assert sorted(published) == sorted(p.event_id for p in placed)
