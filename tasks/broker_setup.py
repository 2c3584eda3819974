"""Queues on RabbitMQ: declaring the configured ones (idempotent: see tasks/celery_app.py),
and making one for a consumer declared later exactly like them."""

from __future__ import annotations

import logging

from celery import Celery
from kombu import Queue

from config.settings import is_rabbitmq, mask_url

log = logging.getLogger(__name__)


def declare_queues(app: Celery) -> None:
    if not is_rabbitmq(app.conf.broker_url or ""):
        return
    try:
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            for queue in app.amqp.queues.values():
                queue.bind(channel).declare()
    except Exception as exc:  # the worker's own start-up retries the connection
        log.warning("could not declare the queues on %s: %s", mask_url(app.conf.broker_url), exc)


def queue_for(app: Celery, name: str) -> Queue:
    """A queue made like the configured ones (a consumer declared after start-up): on
    RabbitMQ durable, on the `orderflow` topic exchange, of the same type (quorum)."""
    for configured in app.conf.task_queues or []:
        if configured.exchange is not None and configured.exchange.name:
            return Queue(name, configured.exchange, routing_key=name, durable=True,
                         queue_arguments=configured.queue_arguments)
    return Queue(name)
