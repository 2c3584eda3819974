"""The SSE stream only moves a delivery forward: duplicates and stale messages are dropped."""

from __future__ import annotations

from live.progress import forward


def status(consumer: str, state: str, attempts: int) -> dict:
    return {"event_id": "e", "consumer": consumer, "state": state, "attempts": attempts,
            "last_error": None}


def test_duplicates_and_stale_statuses_are_not_sent_again():
    sent: dict = {}
    shown = [
        *forward([status("email", "pending", 0), status("inventory", "pending", 0)], sent),
        *forward([status("email", "running", 1)], sent),
        *forward([status("email", "running", 1)], sent),  # read from the database and the channel
        *forward([status("email", "retrying", 1)], sent),
        *forward([status("email", "succeeded", 2)], sent),  # a database re-read got ahead
        *forward([status("email", "running", 2)], sent),  # the channel's older message: dropped
    ]
    assert [(s["consumer"], s["state"], s["attempts"]) for s in shown] == [
        ("email", "pending", 0), ("inventory", "pending", 0), ("email", "running", 1),
        ("email", "retrying", 1), ("email", "succeeded", 2)]


def test_the_database_is_sent_as_is_so_a_replayed_dead_letter_shows_up():
    sent: dict = {}
    list(forward([status("email", "dead", 3)], sent, from_database=True))
    assert list(forward([status("email", "running", 1)], sent)) == []  # channel: looks stale
    [replayed] = forward([status("email", "pending", 0)], sent, from_database=True)
    assert replayed["state"] == "pending"
    assert list(forward([status("email", "pending", 0)], sent, from_database=True)) == []
