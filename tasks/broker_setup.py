"""Declaring the configured queues on RabbitMQ (idempotent): see tasks/celery_app.py."""

from __future__ import annotations

import logging

from celery import Celery

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
