"""Whether the consumers are behind: messages no worker has taken yet, waiting in their queues.

The relay asks after each pass that published something. Only then does it
linger and let events pile up into fuller messages (tasks/publisher.py): when
the workers keep up, an event goes out at once and alone; when they are behind,
it would only wait in the broker instead of in the outbox, so batching costs no
latency and saves the workers Celery's per-message work.

Redis: the length of the list kombu keeps per queue (LLEN). RabbitMQ: the
queue's ready-message count, from a passive queue.declare (which never creates).
"""

from __future__ import annotations

import logging
import threading

from kombu import Connection

from config.settings import is_rabbitmq
from outbox import status_feed

log = logging.getLogger(__name__)

_amqp: dict[str, Connection] = {}
_amqp_lock = threading.Lock()


def consumers_behind(broker_url: str, queues: list[str]) -> bool:
    """True if any of `queues` holds a message; False when empty or when the broker does not answer."""
    try:
        if is_rabbitmq(broker_url):
            return any(waiting > 0 for waiting in _rabbitmq_ready(broker_url, queues))
        # kombu keeps a Redis queue's waiting messages in a list named after the queue.
        pipeline = status_feed.client(broker_url).pipeline(transaction=False)
        for queue in queues:
            pipeline.llen(queue)
        return any(waiting > 0 for waiting in pipeline.execute())
    except Exception as exc:  # a publish just worked; at worst the next pass does not linger
        log.debug("queue lengths unavailable: %s", type(exc).__name__)
        return False


def _rabbitmq_ready(broker_url: str, queues: list[str]) -> list[int]:
    with _amqp_lock:  # one connection kept per URL: the relay asks after each busy pass
        conn = _amqp.get(broker_url)
        if conn is None:
            conn = _amqp[broker_url] = Connection(broker_url, connect_timeout=2)
        try:
            channel = conn.default_channel
            return [channel.queue_declare(queue=q, passive=True).message_count for q in queues]
        except Exception:
            _amqp.pop(broker_url, None)
            conn.release()
            raise
