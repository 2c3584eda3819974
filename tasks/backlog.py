"""Whether the consumers are behind: messages no worker has taken yet, waiting in their queues.

The relay asks after each pass that published something. Only then does it
linger and let events pile up into fuller messages (tasks/publisher.py): when
the workers keep up, an event goes out at once and alone; when they are behind,
it would only wait in Redis instead of in the outbox, so batching costs no
latency and saves the workers Celery's per-message work.
"""

from __future__ import annotations

import logging

from outbox import status_feed

log = logging.getLogger(__name__)


def consumers_behind(broker_url: str, queues: list[str]) -> bool:
    """True if any of `queues` holds a message; False when empty or when Redis does not answer."""
    try:
        # kombu keeps a Redis queue's waiting messages in a list named after the queue.
        pipeline = status_feed.client(broker_url).pipeline(transaction=False)
        for queue in queues:
            pipeline.llen(queue)
        return any(waiting > 0 for waiting in pipeline.execute())
    except Exception as exc:  # a publish just worked; at worst the next pass does not linger
        log.debug("queue lengths unavailable: %s", type(exc).__name__)
        return False
