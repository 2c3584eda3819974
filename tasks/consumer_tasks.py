"""One Celery task per declared durable subscriber, generated from its declaration.

A consumer is declared once (orders/subscriptions.py); this module gives it
its task, named as declared (`orders.email.send_confirmation`...), routed to
its own queue. A subscriber declared later (a test, a plugin) gets its task
and queue the moment it is declared. The task body is the same for everyone:
open the handler for this message and let DeliveryTask apply the rules.
"""

from __future__ import annotations

from typing import Any

import orders.subscriptions  # noqa: F401  (the shop's declarations: imported for their effect)
import shipping.subscriptions  # noqa: F401  (the shipping service's)
from outbox.errors import PermanentError
from outbox.subscriptions import DURABLE, Subscriber, registry, subscriber_for
from tasks import runtime
from tasks.broker_setup import queue_for
from tasks.celery_app import app
from tasks.delivery_task import BatchItems, DeliveryTask

_registered: set[str] = set()


def register(subscriber: Subscriber) -> None:
    """Create the subscriber's task (and, once Celery is configured, its queue); idempotent."""
    if subscriber.mode != DURABLE or subscriber.task_name in _registered:
        return
    _registered.add(subscriber.task_name)

    consumer = subscriber.consumer

    def deliver(self: DeliveryTask, event_id: str | None = None, payload: Any = None,
                batch: BatchItems | None = None) -> Any:
        # The declaration as it stands now (looked up per message, not captured at registration).
        declared = subscriber_for(consumer)
        if declared is None:
            raise PermanentError(f"consumer {consumer!r} is no longer declared")
        with declared.handler_for_message(runtime.current().settings) as handler:
            return self.handle(event_id, payload, batch, handler,
                               effects_in_database=declared.effects_in_database)

    deliver.__name__ = deliver.__qualname__ = subscriber.task_name.replace(".", "_")
    app.task(base=DeliveryTask, bind=True, consumer=subscriber.consumer, name=subscriber.task_name,
             shared=False)(deliver)
    if app.configured:  # declared after start-up: celeryconfig did not list its queue
        app.amqp.queues.select_add(queue_for(app, subscriber.queue))
        app.conf.task_routes = {**(app.conf.task_routes or {}),
                                subscriber.task_name: {"queue": subscriber.queue}}


registry.on_declare(register)
