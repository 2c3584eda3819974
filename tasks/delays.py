"""Countdowns as the broker can hold them.

On RabbitMQ quorum queues a countdown goes through Celery's native delayed
delivery: the message waits in a ladder of TTL queues, one per bit of the delay
in WHOLE seconds. Celery 5.7 truncates the countdown with int() and kombu then
refuses 0 ("countdown must be a positive number", kombu's
native_delayed_delivery.calculate_routing_key), so a retry 0.4 s later raises
inside `self.retry()` and the message is rejected: lost until the reconciler
republishes it. Rounding up to a whole second keeps every retry, never earlier
than the policy asked; on Redis and classic queues the countdown passes as is.
"""

from __future__ import annotations

import math

from celery import Celery

from config.settings import is_rabbitmq


def uses_native_delays(app: Celery) -> bool:
    if not is_rabbitmq(app.conf.broker_url or ""):
        return False
    return any((q.queue_arguments or {}).get("x-queue-type") == "quorum" for q in app.amqp.queues.values())


def broker_countdown(app: Celery, seconds: float | None) -> float | None:
    """`seconds`, rounded up to a whole second (at least 1) where the broker counts in seconds."""
    if not seconds or seconds <= 0 or not uses_native_delays(app):
        return seconds
    return float(max(1, math.ceil(seconds)))
