"""Who hears which event, and how: the registry the application declares its subscribers in.

The application declares each subscriber once (orders/subscriptions.py does it
for the shop) with `declare(event_type, Subscriber(...))`. Everything else
follows from the declaration: the Celery task that runs a durable subscriber
and the queue it listens on (tasks/consumer_tasks.py), the worker in the
Procfile and in `make run` (devtools/procfile.py), the delivery records, the
dead letters, the metrics.

Every subscriber chooses a delivery mode:

- `durable` (the default): the event goes through the outbox to the
  subscriber's own queue (named after it) and task, with retries, a delivery
  record and a dead letter. Survives crashes and broker outages. Its handler
  is called as `handler(session, event_id, payload)` inside the transaction
  that records the delivery as succeeded; a handler that needs a resource
  for a whole message (one SMTP connection for a batch of mails) is declared
  with `opens=` instead: `opens(settings)` is a context manager giving the
  handler.
- `in_process`: the handler is called in the publishing process right after
  the transaction commits (outbox/in_process.py) as
  `handler(event_id=, payload=, settings=)`. No broker, no record; an
  exception is logged; **lost if the process dies** between commit and call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from outbox.policies import FALLBACK_POLICY, RetryPolicy, with_overrides

DURABLE = "durable"
IN_PROCESS = "in_process"

# handler(session, event_id, payload): what a durable consumer does for one delivery
Handler = Callable[[Any, str, Any], Any]
# opens(settings) -> a context manager giving the handler for one message (several deliveries)
HandlerFactory = Callable[[Any], AbstractContextManager[Handler]]


@dataclass(frozen=True)
class Subscriber:
    consumer: str
    handler: Callable[..., Any] | None = None
    opens: HandlerFactory | None = field(default=None, compare=False)
    mode: str = DURABLE
    # The task's name is what in-flight messages and Flower point to: never rename a deployed one.
    task_name: str = ""
    policy: RetryPolicy = FALLBACK_POLICY
    # Several deliveries may travel in one message when events pile up (tasks/delivery_task.py).
    batches: bool = True
    # False: the handler acts outside the database only (never uses the session), so a batch
    # needs no savepoints (outbox/deliveries.py).
    effects_in_database: bool = True
    # The highest payload schema_version the handler understands (outbox/versions.py); older
    # payloads are upcast to it, newer ones held until the consumer is upgraded. None: the
    # current version declared for the event type.
    accepts: int | None = None
    # The service the consumer belongs to: its effects and its delivery records live in that
    # service's database (Settings.database_url_for), whichever service published the event.
    service: str = "main"

    def __post_init__(self) -> None:
        if self.mode not in (DURABLE, IN_PROCESS):
            raise ValueError(f"unknown delivery mode {self.mode!r}")
        if (self.handler is None) == (self.opens is None) or (self.mode == IN_PROCESS and self.opens):
            raise ValueError(f"subscriber {self.consumer!r} needs one handler (durable: handler or opens; "
                             "in_process: handler)")
        if self.mode == DURABLE and not self.task_name:
            object.__setattr__(self, "task_name", f"outbox.{self.consumer}.deliver")

    @property
    def queue(self) -> str:
        return self.consumer

    @contextmanager
    def handler_for_message(self, settings: Any) -> Iterator[Handler]:
        """The handler to call for each delivery of one message."""
        if self.opens is not None:
            with self.opens(settings) as handler:
                yield handler
        else:
            assert self.handler is not None
            yield self.handler


class Registry:
    """Declared subscribers by event type. Thread-safe; listeners hear every declaration."""

    def __init__(self) -> None:
        self._by_event: dict[str, list[Subscriber]] = {}
        self._listeners: list[Callable[[Subscriber], None]] = []
        self._lock = threading.RLock()

    def declare(self, event_type: str, subscriber: Subscriber) -> Subscriber:
        with self._lock:
            known = self._by_event.setdefault(event_type, [])
            if any(s.consumer == subscriber.consumer for s in known):
                raise ValueError(f"{subscriber.consumer!r} already subscribes to {event_type!r}")
            known.append(subscriber)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(subscriber)
        return subscriber

    def withdraw(self, event_type: str, consumer: str) -> None:
        """Remove a declaration (tests that declare a consumer of their own)."""
        with self._lock:
            self._by_event[event_type] = [s for s in self._by_event.get(event_type, [])
                                          if s.consumer != consumer]

    def on_declare(self, listener: Callable[[Subscriber], None]) -> None:
        """Call `listener` for every subscriber declared so far and every one declared later."""
        with self._lock:
            self._listeners.append(listener)
            existing = [s for subs in self._by_event.values() for s in subs]
        for subscriber in existing:
            listener(subscriber)

    def event_types_of(self, consumer: str) -> list[str]:
        """The event types `consumer` is declared for (durable or not)."""
        with self._lock:
            return [t for t, subs in self._by_event.items() if any(s.consumer == consumer for s in subs)]

    def event_types(self) -> list[str]:
        with self._lock:
            return list(self._by_event)

    def service_of(self, consumer: str) -> str | None:
        subscriber = self.durable_named(consumer)
        return subscriber.service if subscriber is not None else None

    def subscribers_of(self, event_type: str, mode: str = DURABLE) -> tuple[Subscriber, ...]:
        with self._lock:
            return tuple(s for s in self._by_event.get(event_type, ()) if s.mode == mode)

    def durable(self) -> list[Subscriber]:
        """Every durable subscriber once, by consumer name."""
        with self._lock:
            found = {s.consumer: s for subs in self._by_event.values() for s in subs if s.mode == DURABLE}
        return [found[name] for name in sorted(found)]

    def durable_named(self, consumer: str) -> Subscriber | None:
        """The durable subscriber `consumer`; cheap (no copy, no sort), since every delivery asks."""
        with self._lock:
            for subs in self._by_event.values():
                for subscriber in subs:
                    if subscriber.consumer == consumer and subscriber.mode == DURABLE:
                        return subscriber
        return None


registry = Registry()


def declare(event_type: str, subscriber: Subscriber) -> Subscriber:
    return registry.declare(event_type, subscriber)


def subscribers_of(event_type: str, mode: str = DURABLE) -> tuple[Subscriber, ...]:
    """The subscribers of `event_type` with that delivery mode (durable by default:
    what the publisher sends and what delivery records exist for)."""
    return registry.subscribers_of(event_type, mode)


def durable_subscribers() -> list[Subscriber]:
    return registry.durable()


def all_consumers() -> list[str]:
    """Durable consumers: each has a queue."""
    return [s.consumer for s in registry.durable()]


def subscriber_for(consumer: str) -> Subscriber | None:
    return registry.durable_named(consumer)


def policy_for(consumer: str, overrides: Any = None) -> RetryPolicy:
    """The consumer's declared retry policy, with the operator's overrides (ORDERFLOW_RETRY_POLICIES)."""
    subscriber = subscriber_for(consumer)
    policy = subscriber.policy if subscriber is not None else FALLBACK_POLICY
    return with_overrides(policy, (overrides or {}).get(consumer), name=consumer)


def task_id_for(event_id: str, consumer: str) -> str:
    """Deterministic: a republished event reuses the same task id (Flower groups them)."""
    return f"{event_id}:{consumer}"


def batch_task_id(event_ids: list[str], consumer: str) -> str:
    """A batch's task id names its first and last event and its size (readable in Flower)."""
    return f"{event_ids[0]}..{event_ids[-1]}+{len(event_ids)}:{consumer}"
