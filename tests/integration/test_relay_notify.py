"""On PostgreSQL the commit's NOTIFY wakes the relay: orders go out at once, with no fast path.

The relay here polls only every 30 s, so an order published within a few seconds
was published because NOTIFY woke it (and because its grace is 0 without a fast path).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from config.settings import PROJECT_ROOT
from outbox.clock import new_id
from outbox.models import OutboxEvent
from outbox.store import RELAY_CHANNEL, notify_relay
from tests.support.databases import fresh_database
from tests.support.orders import all_final, order_input, outbox_event
from tests.support.waiting import wait_until
from web import create_app

pytestmark = pytest.mark.postgres

LONG_POLL = "30"
# Far below LONG_POLL, with room for a loaded, shared machine.
WOKEN_WITHIN = 5.0


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL only (overrides the sqlite/postgres parametrized fixture)."""
    with fresh_database("postgres", tmp_path) as url:
        yield url


@pytest.fixture
def relay(settings, redis_url, tmp_path) -> Iterator[Path]:
    """`python -m tasks.relay` with a 30 s poll; yields its log file once it listens."""
    log = tmp_path / "relay.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PUBLISH_MODE", "RELAY_GRACE_SECONDS")}
    env.update(DATABASE_URL=settings.database_url, REDIS_URL=redis_url,
               RELAY_POLL_SECONDS=LONG_POLL, PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tasks.relay"], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "listening for" in log.read_text(), timeout=30,
                   message="the relay listens")
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, log.read_text()[-3000:]


def place_via_api(api) -> str:
    response = api.post("/orders", json=order_input())
    assert response.status_code == 201, response.get_json()
    return response.get_json()["event_id"]


def published_within(runtime, event_id: str, seconds: float) -> float:
    started = time.monotonic()
    wait_until(lambda: outbox_event(runtime.session_factory, event_id).published_at, timeout=seconds,
               message=f"event {event_id} published")
    return time.monotonic() - started


def test_web_app_on_postgres_has_no_fast_path_and_notify_wakes_the_relay(
    runtime, settings, worker, relay
):
    api = create_app({"ORDERFLOW_SETTINGS": settings}).test_client()  # the default publisher
    # The first one may go out with the relay's start-up drain; the second can only be woken.
    first = place_via_api(api)
    published_within(runtime, first, WOKEN_WITHIN)
    second = place_via_api(api)
    took = published_within(runtime, second, WOKEN_WITHIN)
    final = wait_until(lambda: all_final(runtime.session_factory, second), timeout=30)
    assert set(final.values()) == {"succeeded"}
    # Woken for it (maybe with the order.reserved inventory wrote for the first one meanwhile).
    assert re.search(rf"relay published [12] event\(s\): .*{second}", relay.read_text())
    print(f"published {took:.2f}s after the 201 (relay poll {LONG_POLL}s)")


def test_notify_reaches_listeners_only_on_commit(runtime, settings):
    conninfo = make_url(settings.database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {RELAY_CHANNEL}")

        with contextlib.suppress(RuntimeError), runtime.session_factory.begin() as session:
            session.add(OutboxEvent(id=new_id(), event_type="order.created", aggregate_id="x",
                                    payload={}))
            notify_relay(session)
            raise RuntimeError("the use case fails after writing: roll back")
        assert list(listener.notifies(timeout=1.0)) == []
        with runtime.session_factory() as session:
            assert session.scalar(text("SELECT count(*) FROM outbox")) == 0

        with runtime.session_factory.begin() as session:
            notify_relay(session)
            notify_relay(session)  # folded into one by PostgreSQL
        woken = list(listener.notifies(timeout=5.0, stop_after=1))
        assert [n.channel for n in woken] == [RELAY_CHANNEL]


def test_listen_connection_killed_relay_still_delivers_and_listens_again(
    runtime, settings, worker, relay
):
    api = create_app({"ORDERFLOW_SETTINGS": settings}).test_client()
    killed = terminate_listen_connections(runtime)
    assert killed, "the relay had a LISTEN connection"
    # Placed while the relay may be deaf: the reconnect's drain (or the poll) takes it.
    deaf = place_via_api(api)
    published_within(runtime, deaf, 20)
    wait_until(lambda: relay.read_text().count("listening for") >= 2, timeout=20,
               message="the relay listens again")
    assert "LISTEN connection lost" in relay.read_text()
    new_pids = wait_until(lambda: listen_pids(runtime), timeout=10)
    assert not set(new_pids) & set(killed)
    woken = place_via_api(api)  # NOTIFY wakes it again, well before the 30 s poll
    published_within(runtime, woken, WOKEN_WITHIN)
    for event_id in (deaf, woken):
        final = wait_until(lambda e=event_id: all_final(runtime.session_factory, e), timeout=30)
        assert set(final.values()) == {"succeeded"}


def listen_pids(runtime) -> list[int]:
    """Backends of THIS test's throwaway database that are LISTENing (the relay's)."""
    with runtime.session_factory() as session:
        return list(session.scalars(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN %'")))


def terminate_listen_connections(runtime) -> list[int]:
    pids = listen_pids(runtime)
    with runtime.session_factory() as session:
        for pid in pids:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    return pids
