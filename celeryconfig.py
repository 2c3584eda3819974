"""Celery settings, flat and lowercase, built from orderflow's Settings (config/settings.py).

`celery -A tasks ...` loads this module. Every value that matters for
reliability is explained; `tasks/safety.py` refuses to start a worker or relay
when they do not hold together. Nothing here reads the environment itself:
change a value through its variable (docs/configuration.md), not in this file.
"""

from typing import Any

from kombu import Exchange, Queue

from config.settings import Settings
from orders import subscriptions as _declared  # noqa: F401  (the consumers: their queues below)
from outbox.subscriptions import durable_subscribers
from shipping import subscriptions as _shipping_declared  # noqa: F401  (the shipping service's)

try:
    _settings = Settings.from_env()
except ValueError as _bad:  # one line, not a traceback from inside Celery's config loader
    raise SystemExit(f"orderflow: refusing to start: {_bad}") from None



def broker_conf(settings: Settings) -> dict[str, Any]:
    """The Celery settings that depend on the broker (Redis or RabbitMQ, from the URL)."""
    names = [s.queue for s in durable_subscribers()] + ["notifications", "celery"]
    if not settings.on_rabbitmq:
        return {
            "broker_url": settings.broker,
            "broker_transport_options": {
                # A message taken but not acked is handed out again after this long. Every
                # retry countdown plus task time limit must stay well below it (checked at start-up).
                "visibility_timeout": settings.broker_visibility_timeout,
                # An unreachable broker must fail a publish quickly: the relay takes over.
                "socket_connect_timeout": 2,
                "socket_timeout": 10,
            },
            "task_queues": [Queue(name) for name in names],
        }
    # RabbitMQ hands an unacked message back when its connection closes: no visibility
    # timeout. Durable per-consumer queues (quorum: replicated on a cluster's nodes), bound
    # to one topic exchange: Celery's native delayed delivery (how countdowns work on
    # quorum queues, without the worker holding the message) needs a non-direct exchange.
    exchange = Exchange("orderflow", type="topic", durable=True)
    return {
        "broker_url": settings.broker,
        # Every publish waits for the broker's confirm (on disk; on a quorum's majority): a
        # relay pass that returns had every message taken; a nack or a lost connection
        # raises, and the events stay unpublished in the outbox.
        "broker_transport_options": {"confirm_publish": True},
        # A silent worker host is noticed after about this long; its messages go to another.
        "broker_heartbeat": settings.broker_heartbeat,
        "broker_connection_timeout": 4,
        "task_default_exchange": exchange.name,
        "task_default_exchange_type": exchange.type,
        "task_queues": [Queue(name, exchange, routing_key=name, durable=True,
                              queue_arguments={"x-queue-type": settings.rabbitmq_queue_type})
                        for name in names],
    }


# broker_url, broker_transport_options, task_queues (and on RabbitMQ heartbeat, exchange).
globals().update(broker_conf(_settings))
broker_connection_retry_on_startup = True

# Nothing reads task results: the delivery records are the source of truth.
result_backend = None
task_ignore_result = True

# JSON only. Never pickle.
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# Ack after the task ran, and hand the message back if the worker dies: a killed
# worker loses nothing. The delivery record caps redeliveries (poison messages).
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Flower needs both to show every task, retry and failure.
worker_send_task_events = True
task_send_sent_event = True

task_soft_time_limit = _settings.task_soft_time_limit
task_time_limit = _settings.task_time_limit
# How long the pool waits, after a child process died, before it reports WorkerLostError
# (which requeues the message). Must stay below task_time_limit: otherwise the time limit
# fires first on the dead child and the message is acknowledged as failed instead.
worker_lost_wait = _settings.worker_lost_wait

# One queue per declared consumer (orders/subscriptions.py), each task routed to its own;
# "notifications" holds the plain notice task (tasks/notice_task.py); "celery" stays for
# Celery's own control tasks (ping).
_consumers = durable_subscribers()
task_default_queue = "celery"
task_routes = {s.task_name: {"queue": s.queue} for s in _consumers} | {
    "orders.notifications.*": {"queue": "notifications"}}
task_create_missing_queues = False

worker_hijack_root_logger = False
worker_redirect_stdouts = False
