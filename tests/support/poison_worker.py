"""Test-only: the real `tasks` app plus one consumer whose handler kills its worker process.

    celery -A tests.support.poison_worker worker -Q poison,analytics

The extra queue and task exist only in a process that imports this module; the
production subscriptions (orders/subscriptions.py) never name them.
"""

from __future__ import annotations

import os
from typing import Any

from kombu import Queue

from tasks import app
from tasks.delivery_task import BatchItems, DeliveryTask

POISON_QUEUE = "poison"
POISON_TASK = "orders.poison.explode"

app.conf.task_queues = [*app.conf.task_queues, Queue(POISON_QUEUE)]


@app.task(base=DeliveryTask, bind=True, consumer="poison", name=POISON_TASK)
def explode(self: DeliveryTask, event_id: str | None = None, payload: dict[str, Any] | None = None,
            batch: BatchItems | None = None) -> Any:
    def handler(_session: Any, _event_id: str, payload: dict[str, Any]) -> None:
        with open(payload["runs_file"], "a") as runs:  # the test counts the handler's runs
            runs.write(f"{os.getpid()}\n")
        if payload.get("poison", True):
            os._exit(1)  # what a segfault or the OOM killer does to the process

    return self.handle(event_id, payload, batch, handler)
