"""The states of a delivery record, and which of them are final.

    pending -> running -> (retrying -> running)* -> succeeded | dead
    pending | retrying -> held -> running   its consumer is paused or its breaker is open
                                            (tasks/consumer_gate.py): waiting, no attempt spent
    dead -> pending          an operator replays it (outbox/dead_letter_actions.py)
    dead -> discarded        an operator sets it aside for good

A StrEnum: the values are the strings stored in `deliveries.state`, so a state
compares equal to what the database returns.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    DISCARDED = "discarded"
    HELD = "held"


PENDING = DeliveryState.PENDING
RUNNING = DeliveryState.RUNNING
RETRYING = DeliveryState.RETRYING
SUCCEEDED = DeliveryState.SUCCEEDED
DEAD = DeliveryState.DEAD
DISCARDED = DeliveryState.DISCARDED
HELD = DeliveryState.HELD

# Nothing more happens to a final delivery unless an operator replays a dead one.
FINAL_STATES = (SUCCEEDED, DEAD, DISCARDED)
IN_FLIGHT_STATES = (PENDING, RUNNING, RETRYING, HELD)
