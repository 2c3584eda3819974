"""The Celery side of pause, circuit breaker and rate limit: a check at the start of a delivery.

Before a message's deliveries begin (no attempt counted yet), `admit` asks
outbox/consumer_control.py whether the consumer may run:

- paused, or its breaker open (or half-open with the probe out): the deliveries
  are marked `held` (outbox/deliveries.py `hold_many`: no attempt spent) and
  the message is sent again with a countdown (to the next probe time, spread
  over one probe interval; a paused consumer looks again every probe interval).
  The message that came in is acknowledged as a success ("held"): Flower shows
  one row per delivery, not a retry per look;
- the breaker due for a probe: ONE delivery runs as the probe, the rest of a
  batch is held;
- a rate limit: tokens from the cluster-wide bucket (outbox/rate_limit.py),
  one per delivery; what gets none goes on in a new message after the wait.

Each outcome is then told to the breaker (`succeeded`, `failed`). A transient
failure while the breaker is open (it just opened, or it was a failed probe)
is the outage's: the delivery gets its attempt back and is held, instead of
walking its retries towards a dead letter.

What a worker reads is cached for a second while the consumer runs normally
(not paused, breaker closed, no failure counted): pausing takes effect within
a second, and a healthy consumer pays one small read per second per process,
not one per delivery.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Task
from sqlalchemy.exc import DBAPIError

from config.settings import Settings
from outbox import consumer_control, deliveries, status_feed
from outbox.breaker import Admit, BreakerConfig, hold_countdown
from outbox.clock import utcnow
from outbox.consumer_control import ConsumerView
from outbox.errors import PermanentError, TransientError
from outbox.rate_limit import Grant, RateLimiter
from outbox.states import HELD
from outbox.subscriptions import batch_task_id, task_id_for
from tasks import runtime
from tasks.delays import broker_countdown

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
Item = tuple[str, Any]  # (event id, payload)

_lock = threading.Lock()
_cache: dict[str, tuple[float, ConsumerView]] = {}
_limiters: dict[tuple[str, str, float], RateLimiter] = {}


@dataclass(frozen=True)
class Admitted:
    items: list[Item]  # what runs now (the rest was held or passed on)
    probe: bool = False


def breaker_config(settings: Settings) -> BreakerConfig:
    return BreakerConfig(failures=settings.breaker_failures, probe_seconds=settings.breaker_probe_seconds,
                         probe_max_seconds=settings.breaker_probe_max_seconds)


def admit(task: Task, items: list[Item], queue: str | None) -> Admitted | None:
    """What of this message may run now; None when all of it was held or passed on."""
    consumer = task.consumer  # type: ignore[attr-defined]
    settings = runtime.current().settings
    config = breaker_config(settings)
    view = _cached(consumer)
    probe = False
    if view is None:
        admission, view = consumer_control.admit(
            runtime.current().sessions_of(consumer), consumer, config=config,
            probe_lease_seconds=settings.lease_seconds, pause_recheck_seconds=settings.breaker_probe_seconds)
        _remember(view)
        if admission.verdict is Admit.HOLD:
            countdown = hold_countdown(admission.hold_until, now=utcnow(), config=config,
                                       cap_seconds=settings.breaker_probe_max_seconds + config.probe_seconds)
            why = "paused" if view.paused else f"breaker {view.breaker.state}"
            hold(task, items, queue, countdown=countdown, why=why)
            return None
        probe = admission.verdict is Admit.PROBE
        if probe and len(items) > 1:  # the probe is one delivery; the rest wait for its answer
            hold(task, items[1:], queue, countdown=config.probe_seconds, why="breaker probing")
            items = items[:1]
    granted = _take_tokens(consumer, settings, len(items))
    if granted.granted < len(items):
        countdown = granted.wait + random.uniform(0.0, 1.0) if not granted.granted else granted.wait
        _send(task, items[granted.granted:], queue, countdown=max(countdown, 0.05))
        items = items[:granted.granted]
    return Admitted(items, probe) if items else None


def succeeded(consumer: str, *, probe: bool) -> None:
    """A delivery got through: closes a half-open breaker, ends a run of failures."""
    view = _cached(consumer)
    if not probe and view is not None and view.breaker.failures == 0:
        return  # healthy and nothing to reset: no write
    _record(consumer, consumer_control.SUCCESS, probe)


def failed(consumer: str, exc: BaseException, *, probe: bool) -> bool:
    """Tell the breaker; True when the delivery must be held (the breaker is open) instead of retried."""
    if isinstance(exc, TransientError):
        return _record(consumer, consumer_control.TRANSIENT, probe) != "closed"
    if isinstance(exc, PermanentError):  # the downstream answered
        _record(consumer, consumer_control.PERMANENT, probe)
    return False


def hold_failed(task: Task, item: Item, queue: str | None, error: str) -> None:
    """The failed delivery gets its attempt back and waits for the next probe."""
    consumer = task.consumer  # type: ignore[attr-defined]
    rt = runtime.current()
    deliveries.hold_after_failure(rt.sessions_of(consumer), event_id=item[0], consumer=consumer, error=error)
    config = breaker_config(rt.settings)
    view = consumer_control.read(rt.sessions_of(consumer), consumer)
    countdown = hold_countdown(view.breaker.next_probe_at, now=utcnow(), config=config,
                               cap_seconds=rt.settings.breaker_probe_max_seconds + config.probe_seconds)
    log.warning("event=%s consumer=%s breaker %s: held, attempt given back; looking again in %.1fs",
                item[0], consumer, view.breaker.state, countdown)
    _announce(rt.settings.status_feed_url, [item[0]], consumer, error)
    _send(task, [item], queue, countdown=countdown)


def hold(task: Task, items: Sequence[Item], queue: str | None, *, countdown: float, why: str) -> None:
    consumer = task.consumer  # type: ignore[attr-defined]
    rt = runtime.current()
    ids = [event_id for event_id, _ in items]
    deliveries.hold_many(rt.sessions_of(consumer), event_ids=ids, consumer=consumer, queue=queue)
    log.info("consumer=%s %s: %d delivery(ies) held, first event=%s; looking again in %.1fs",
             consumer, why, len(ids), ids[0], countdown)
    _announce(rt.settings.status_feed_url, ids, consumer, None)
    _send(task, list(items), queue, countdown=countdown)


def forget() -> None:
    """Drop what this process cached (tests change the state under a running worker)."""
    with _lock:
        _cache.clear()


def _send(task: Task, items: list[Item], queue: str | None, *, countdown: float) -> None:
    consumer = task.consumer  # type: ignore[attr-defined]
    # Whole seconds on RabbitMQ quorum queues, or the message is lost (tasks/delays.py).
    countdown = broker_countdown(task.app, countdown) or countdown
    if len(items) == 1:
        event_id, payload = items[0]
        task.apply_async(args=[event_id, payload], task_id=task_id_for(event_id, consumer), queue=queue,
                         countdown=countdown)
        return
    ids = [event_id for event_id, _ in items]
    task.apply_async(kwargs={"batch": [list(item) for item in items]}, task_id=batch_task_id(ids, consumer),
                     queue=queue, countdown=countdown, kwargsrepr=f"{{'batch': {ids!r}}}")


def _announce(redis_url: str, event_ids: list[str], consumer: str, error: str | None) -> None:
    status_feed.announce_many(redis_url, [
        status_feed.status_message(event_id=event_id, consumer=consumer, state=HELD, attempts=0,
                                   last_error=error) for event_id in event_ids])


def _record(consumer: str, outcome: str, probe: bool) -> str:
    rt = runtime.current()
    try:
        state = consumer_control.record(rt.sessions_of(consumer), consumer, outcome=outcome, probe=probe,
                                        config=breaker_config(rt.settings))
    except DBAPIError as exc:
        # The breaker misses one outcome; the delivery itself goes on by its own rules
        # (a probe's outcome lost leaves the breaker half-open until the probe's lease ends).
        log.warning("consumer=%s breaker not told of a %s (database unavailable: %s)", consumer, outcome,
                    type(exc).__name__)
        return "closed"
    with _lock:
        _cache.pop(consumer, None)  # read afresh next time
    return state.state


def _cached(consumer: str) -> ConsumerView | None:
    with _lock:
        found = _cache.get(consumer)
    if found is None or time.monotonic() - found[0] > CACHE_SECONDS:
        return None
    return found[1]


def _remember(view: ConsumerView) -> None:
    if view.status == "running":  # only a healthy consumer is taken on trust for a second
        with _lock:
            _cache[view.consumer] = (time.monotonic(), view)


def _take_tokens(consumer: str, settings: Settings, wanted: int) -> Grant:
    rate = settings.rate_limits.get(consumer)
    if not rate:
        return Grant(wanted, 0.0)
    key = (settings.redis_url, consumer, rate)
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = RateLimiter(status_feed.client(settings.redis_url), consumer, rate)
    try:
        return limiter.acquire(wanted)
    except Exception as exc:  # Redis is the broker too: if it is gone nothing flows anyway
        log.warning("consumer=%s rate limit unavailable (%s); delivering without it", consumer,
                    type(exc).__name__)
        return Grant(wanted, 0.0)
