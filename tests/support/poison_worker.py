"""Test-only: the real `tasks` app plus one consumer whose handler kills its worker process.

    celery -A tests.support.poison_worker worker -Q poison,analytics

Declared like any consumer (a subscription and a handler: outbox/subscriptions.py),
for an event type of its own, so only a process that imports this module knows
it; the production subscriptions (orders/subscriptions.py) never name it.
"""

from __future__ import annotations

import os
from typing import Any

from kombu import Queue

from outbox.policies import RetryPolicy
from outbox.subscriptions import Subscriber, declare
from outbox.versions import declare_version
from tasks import app

POISON_EVENT = "test.poison"
POISON_QUEUE = "poison"
POISON_TASK = "orders.poison.explode"


def explode(_session: Any, _event_id: str, payload: dict[str, Any]) -> None:
    with open(payload["runs_file"], "a") as runs:  # the test counts the handler's runs
        runs.write(f"{os.getpid()}\n")
    if payload.get("poison", True):
        os._exit(1)  # what a segfault or the OOM killer does to the process


app.conf.task_queues = [*app.conf.task_queues, Queue(POISON_QUEUE)]
declare_version(POISON_EVENT, current=1, unversioned_as=1)
declare(POISON_EVENT, Subscriber("poison", handler=explode, task_name=POISON_TASK,
                                 policy=RetryPolicy(max_retries=2, backoff_base=0.2, backoff_max=1.0)))
