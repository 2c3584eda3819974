"""The live status feed without Redis: PostgreSQL NOTIFY carries each state change (RabbitMQ setups)."""

from __future__ import annotations

import pytest

from outbox import status_feed
from tests.support.databases import fresh_database


@pytest.mark.postgres
def test_a_state_announced_over_notify_reaches_the_listener_of_its_event_only(tmp_path):
    with fresh_database("postgres", tmp_path) as url:
        mine = status_feed.subscribe(url, ["event-1"])
        try:
            assert status_feed.announce(url, event_id="event-2", consumer="email", state="running",
                                        attempts=1)
            assert status_feed.announce(url, event_id="event-1", consumer="email", state="retrying",
                                        attempts=2, last_error="SMTP 451")
            message = mine.get_message(timeout=5)
            assert message is not None and message["type"] == "message"
            assert '"state": "retrying"' in message["data"] and '"event_id": "event-1"' in message["data"]
            assert mine.get_message(timeout=0.3) is None  # event-2's change went to its own channel
        finally:
            mine.close()


def test_without_a_feed_announcing_does_nothing_and_subscribing_says_poll():
    assert status_feed.announce("", event_id="e", consumer="email", state="running", attempts=1) is False
    with pytest.raises(LookupError, match="polling the database"):
        status_feed.subscribe("", ["e"])
