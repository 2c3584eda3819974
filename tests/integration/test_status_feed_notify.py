"""The live status feed without Redis: PostgreSQL NOTIFY carries each state change (RabbitMQ setups)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from live.feed import NoFeed, PostgresNotifyFeed, RedisPatternFeed, feed_for
from outbox import status_feed
from tests.support.databases import fresh_database


@pytest.mark.postgres
def test_a_state_announced_over_notify_reaches_the_stream_servers_one_listener(tmp_path):
    with fresh_database("postgres", tmp_path) as url:
        heard: list[dict] = []
        states: list[bool] = []

        async def listen_then_announce() -> None:
            task = asyncio.create_task(PostgresNotifyFeed(url).run(heard.append, states.append))
            while states != [True]:  # LISTENing before anything is announced
                await asyncio.sleep(0.02)
            for event_id, state in (("event-1", "running"), ("event-2", "retrying")):
                assert await asyncio.to_thread(status_feed.announce, url, event_id=event_id,
                                               consumer="email", state=state, attempts=1)
            while len(heard) < 2:
                await asyncio.sleep(0.02)
            task.cancel()

        # On a thread of its own: the browser tests' Playwright keeps a loop running on this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, asyncio.wait_for(listen_then_announce(), timeout=30)).result()
        assert [(h["event_id"], h["state"]) for h in heard] == [("event-1", "running"),
                                                                ("event-2", "retrying")]


def test_the_feed_follows_the_broker_and_database():
    assert isinstance(feed_for("redis://127.0.0.1:6379/0"), RedisPatternFeed)
    assert isinstance(feed_for("postgresql+psycopg://db/shop"), PostgresNotifyFeed)
    assert isinstance(feed_for(""), NoFeed)  # RabbitMQ + SQLite: the streams read the database
    assert status_feed.announce("", event_id="e", consumer="email", state="running", attempts=1) is False
