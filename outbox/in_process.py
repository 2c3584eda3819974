"""In-process delivery: after commit, call the `in_process` subscribers in this process.

blinker (Flask's signal library) keeps the receivers: one named signal per
event type. The subscribers declared in `orders/subscriptions.py` are connected
on first use; an embedding project may connect its own receivers too:

    in_process.signal_for("customer.signed_up").connect(my_receiver)

A receiver is called as `receiver(event_type, event_id=..., payload=..., settings=...)`.
Each one is called on its own: an exception is logged and neither stops the
others nor reaches the caller (the transaction is committed, the request must
not fail). Nothing is recorded and nothing retried: if the process dies between
the commit and this call, the event is lost for these subscribers. Side effects
that must not be lost belong to `durable` subscribers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from blinker import NamedSignal, Namespace

from outbox.subscriptions import IN_PROCESS, Subscriber, registry

log = logging.getLogger(__name__)

signals = Namespace()
_connected = False
_connect_lock = threading.Lock()


class Event(Protocol):
    id: str
    event_type: str
    payload: Any


def signal_for(event_type: str) -> NamedSignal:
    return signals.signal(event_type)


def connect_declared_subscribers() -> None:
    """Connect every declared `in_process` handler to its event's signal (once, and every one
    declared later as it is declared)."""
    global _connected
    with _connect_lock:
        if _connected:
            return
        _connected = True
    registry.on_declare(_connect)


def _connect(subscriber: Subscriber) -> None:
    if subscriber.mode != IN_PROCESS or subscriber.handler is None:
        return
    for event_type in registry.event_types():
        if subscriber in registry.subscribers_of(event_type, IN_PROCESS):
            signal_for(event_type).connect(_adapt(subscriber.handler), weak=False)


def dispatch(event: Event, *, settings: Any) -> int:
    """Call every receiver of `event`; returns how many finished without an exception."""
    connect_declared_subscribers()
    signal = signal_for(event.event_type)
    succeeded = 0
    for receiver in list(signal.receivers_for(event.event_type)):
        try:
            receiver(event.event_type, event_id=event.id, payload=event.payload, settings=settings)
            succeeded += 1
        except Exception:  # logged, never raised: the caller's transaction is already committed
            log.exception("in-process subscriber %s of event=%s (%s) failed; not retried",
                          getattr(receiver, "__qualname__", receiver), event.id, event.event_type)
    return succeeded


class InProcessDispatcher:
    """An after-commit callback (see `place_order`) delivering to the in-process subscribers."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def __call__(self, event: Event) -> None:
        dispatch(event, settings=self.settings)


def _adapt(handler: Callable[..., None]) -> Callable[..., None]:
    """Declared handlers take keywords only; blinker passes the sender first."""

    def receiver(_sender: str, **kwargs: Any) -> None:
        handler(**kwargs)

    receiver.__qualname__ = getattr(handler, "__module__", "") + "." + getattr(handler, "__qualname__", "")
    return receiver
