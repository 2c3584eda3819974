"""Celery settings, flat and lowercase, read from the environment with local defaults.

`celery -A tasks ...` loads this module. Every value that matters for
reliability is explained; `tasks/safety.py` refuses to start a worker or relay
when they do not hold together.
"""

import json
import os

from kombu import Queue

from orders.subscriptions import all_consumers

broker_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
broker_connection_retry_on_startup = True
broker_transport_options = {
    # A message taken but not acked is handed out again after this long. Every
    # retry countdown plus task time limit must stay well below it (checked at start-up).
    "visibility_timeout": int(os.environ.get("BROKER_VISIBILITY_TIMEOUT", 3600)),
    # An unreachable broker must fail a publish quickly: the relay takes over.
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
}

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

task_soft_time_limit = int(os.environ.get("TASK_SOFT_TIME_LIMIT", 50))
task_time_limit = int(os.environ.get("TASK_TIME_LIMIT", 60))
# How long the pool waits, after a child process died, before it reports WorkerLostError
# (which requeues the message). Must stay below task_time_limit: otherwise the time limit
# fires first on the dead child and the message is acknowledged as failed instead.
worker_lost_wait = float(os.environ.get("WORKER_LOST_WAIT", 10))

# One queue per consumer, routed by task name (orders.<consumer>.<task>);
# "celery" stays for Celery's own control tasks (ping).
task_default_queue = "celery"
# "notifications" holds plain tasks enqueued by embedding projects (tasks/notifications.py).
task_queues = [Queue(name) for name in all_consumers()] + [Queue("notifications"), Queue("celery")]
task_routes = {f"orders.{name}.*": {"queue": name} for name in [*all_consumers(), "notifications"]}
task_create_missing_queues = False

worker_hijack_root_logger = False
worker_redirect_stdouts = False

# --- orderflow's own settings (read by tasks/policies.py) ---------------------------
# Per-consumer overrides of the retry policy, as JSON, e.g.
#   ORDERFLOW_RETRY_POLICIES='{"email": {"backoff_base": 0.2, "backoff_max": 1}}'
orderflow_retry_policies = json.loads(os.environ.get("ORDERFLOW_RETRY_POLICIES") or "{}")
# How long a running delivery is leased to one worker before another copy may run it.
orderflow_lease_seconds = float(os.environ.get("ORDERFLOW_LEASE_SECONDS", 90))
