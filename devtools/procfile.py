"""The Procfile, derived from the declared consumers: one worker per queue.

    python -m devtools.procfile > Procfile     # after declaring a consumer

The Procfile at the project root is what `make run`, honcho and a PaaS read;
tests/unit/test_procfile_matches.py fails when it and the declarations
(orders/subscriptions.py) disagree, so a new consumer cannot be forgotten.
"""

from __future__ import annotations

import orders.subscriptions  # noqa: F401  (the shop's declarations)
import shipping.subscriptions  # noqa: F401  (the shipping service's)
from outbox.subscriptions import durable_subscribers

WEB = ("gunicorn --bind 127.0.0.1:${WEB_PORT:-8000} --workers 2 --threads 4 --worker-class gthread "
       "--access-logfile - 'web:create_app()'")
# The live status streams (GET /orders/<id>/events): an event loop of their own, so open
# streams never take a gunicorn thread from the API (live/__init__.py).
STREAM = "python -m live --port ${STREAM_PORT:-8001}"
RELAY = "python -m tasks.relay"
# The shipping service's own relay: its outbox is in its own database (SHIPPING_DATABASE_URL).
SHIPPING_RELAY = "python -m tasks.relay --service shipping"
FLOWER = ('test -n "$FLOWER_BASIC_AUTH" || { echo "flower: refusing to start without '
          'FLOWER_BASIC_AUTH=user:password (make run generates one)" >&2; exit 1; }; '
          "exec celery -A tasks flower --address=127.0.0.1 --port=${FLOWER_PORT:-5555} "
          "--persistent=True --db=${ORDERFLOW_VAR_DIR:-var}/flower.db")
# Local stand-ins that `make run` adds only when REDIS_URL / SMTP_URL / DATABASE_URL are not given.
LOCAL_SERVICES = {
    "redis": "python -m devtools.local_redis --port ${LOCAL_REDIS_PORT:-6390}",
    "smtp": "python -m devtools.smtp_sink --port ${LOCAL_SMTP_PORT:-8025}",
    "postgres": ("python -m devtools.local_postgres --port ${LOCAL_POSTGRES_PORT:-5433} "
                 "--data-dir ${ORDERFLOW_VAR_DIR:-var}/postgres"),
}
# The plain notice task's queue (tasks/notice_task.py): not a declared consumer.
EXTRA_QUEUES = ("notifications",)


def worker(queue: str) -> str:
    return f"celery -A tasks worker -Q {queue} -n {queue}@%h --concurrency 1 --loglevel INFO"


def worker_queues() -> list[str]:
    return [s.queue for s in durable_subscribers()] + list(EXTRA_QUEUES)


def app_processes() -> dict[str, str]:
    """Every process of the system itself, in start order: web, the stream server, relay, one
    worker per queue, Flower."""
    return {"web": WEB, "stream": STREAM, "relay": RELAY, "shipping_relay": SHIPPING_RELAY,
            **{q: worker(q) for q in worker_queues()},
            "flower": FLOWER}


def procfile() -> str:
    lines = {**app_processes(), **LOCAL_SERVICES}
    return "".join(f"{name}: {command}\n" for name, command in lines.items())


if __name__ == "__main__":
    print(procfile(), end="")
