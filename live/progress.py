"""What a stream sends: only what changes what the client saw, in the order it happened.

Channel messages only move a delivery forward — one older than what was already
sent is skipped — so the client sees each delivery's states in order: pending,
running, retrying (attempt n), ..., succeeded | dead. A database read is sent as
is (it is the truth): that is how an operator's replay of a dead letter (back to
pending) shows up. Pure functions, unit-tested in tests/unit/test_sse.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from outbox.states import FINAL_STATES

Status = dict[str, Any]
Sent = dict[tuple[str, str], Status]

# `held` (consumer paused or breaker open) comes after `retrying` of the same attempt: a
# retry that comes back to an open breaker is held without spending an attempt.
RANK = {"pending": 0, "running": 1, "retrying": 2, "held": 3, "succeeded": 4, "dead": 4, "discarded": 5}
END = f"event: end\ndata: {json.dumps({'final': True})}\n\n"
KEEPALIVE = ": keep-alive\n\n"


def forward(statuses: Iterable[Status], sent: Sent, *, from_database: bool = False) -> Iterator[Status]:
    """The statuses that change what the client saw; `sent` remembers them.

    From the channel: only a step forward. From the database: any difference.
    """
    for status in statuses:
        key = (status["event_id"], status["consumer"])
        previous = sent.get(key)
        if previous is not None:
            if from_database and progress(status) == progress(previous):
                continue
            if not from_database and progress(status) <= progress(previous):
                continue
        sent[key] = status
        yield status


def progress(status: Status) -> tuple[int, int]:
    return (int(status.get("attempts") or 0), RANK.get(status["state"], 0))


def all_final(sent: Sent) -> bool:
    return all(s["state"] in FINAL_STATES for s in sent.values())


def format_event(status: Status, event_id: int) -> str:
    """One SSE message. `id:` makes a reconnecting EventSource send Last-Event-ID; the
    server answers any reconnect with the current state from the database."""
    return f"id: {event_id}\ndata: {json.dumps(status)}\n\n"
