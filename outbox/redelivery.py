"""One consumer's message, to be published again: what a dead-letter replay hands the publisher.

The use cases (outbox/dead_letter_actions.py) build a `Redelivery`; the caller
passes a `Publish` callable that sends it (tasks/publisher.py's `redeliver`),
which keeps the use cases free of Celery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from outbox.subscriptions import task_id_for


@dataclass(frozen=True)
class Redelivery:
    """Everything needed to publish one consumer's message again."""

    event_id: str
    consumer: str
    task_name: str
    queue: str
    payload: Any

    @property
    def task_id(self) -> str:
        return task_id_for(self.event_id, self.consumer)


Publish = Callable[[Redelivery], None]
