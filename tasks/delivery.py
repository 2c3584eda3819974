"""The base class of every consumer task: delivery record, retry policy, dead letter.

A consumer task is thin: it names its consumer and calls `self.deliver(...)`
with the handler. Everything about *when* to run, retry or give up lives here:

- `begin` counts the attempt and takes a lease; a final delivery is acked and
  forgotten (redelivery is harmless), a leased one is looked at again later.
- TransientError (and a database that does not answer) -> retry with the
  consumer's backoff, until its attempts run out -> dead letter.
- Anything else -> dead letter at once, with the traceback.
- More attempts than the policy allows (a worker killed mid-task each time) ->
  dead letter before running again.

Celery re-raises the original exception when retries run out, so "gave up" is
decided here from the delivery record, never from Celery's counters.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.utils.log import get_task_logger
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from orders import deliveries
from orders.deliveries import Start
from orders.errors import TransientError
from tasks import live, runtime
from tasks.policies import RetryPolicy, policy_for

log = get_task_logger(__name__)

Effect = Callable[[Session], Any]

# Before the delivery record can even be read, the database is the only thing to wait for.
DATABASE_DOWN_BACKOFF = RetryPolicy(max_retries=1000, backoff_base=1.0, backoff_max=60.0)


class GaveUp(Exception):
    """A delivery that ran more often than its policy allows without finishing."""


class DeliveryTask(Task):
    abstract = True
    consumer: str = ""
    # Celery's own autoretry is off: the policy below decides, from the delivery record.
    max_retries = None
    acks_late = True
    reject_on_worker_lost = True

    def policy(self) -> RetryPolicy:
        return policy_for(self.consumer, self.app.conf.get("orderflow_retry_policies"))

    def deliver(self, event_id: str, effect: Effect) -> str:
        """Run `effect` once for (event_id, this consumer); returns the outcome.

        `effect(session)` runs inside the transaction that marks the delivery
        succeeded: database effects commit together with the record.
        """
        rt = runtime.current()
        policy = self.policy()
        try:
            begun = deliveries.begin(
                rt.session_factory, event_id=event_id, consumer=self.consumer,
                queue=self._queue(), lease_seconds=self.app.conf.get("orderflow_lease_seconds", 90),
            )
        except DBAPIError as exc:
            raise self._retry_database_down(event_id, exc) from exc
        if begun.start is Start.DONE:
            log.info("event=%s consumer=%s already final; redelivery ignored", event_id, self.consumer)
            return "duplicate"
        if begun.start is Start.BUSY:
            log.info("event=%s consumer=%s running elsewhere; looking again in %.1fs",
                     event_id, self.consumer, begun.retry_in)
            raise self.retry(countdown=begun.retry_in, max_retries=None)
        attempt = begun.attempts
        if attempt > policy.max_attempts:
            return self._give_up(event_id, attempt, GaveUp(
                f"delivered {attempt} times without finishing (worker lost each time?); "
                f"limit is {policy.max_attempts}"), tb=None)
        self._announce(event_id, deliveries.RUNNING, attempt)
        return self._run(event_id, attempt, policy, effect)

    def _run(self, event_id: str, attempt: int, policy: RetryPolicy, effect: Effect) -> str:
        try:
            first = deliveries.deliver(
                runtime.current().session_factory, event_id=event_id, consumer=self.consumer,
                effect=effect,
            )
        except Retry:
            raise
        except (TransientError, DBAPIError, SoftTimeLimitExceeded) as exc:
            if attempt >= policy.max_attempts:
                return self._give_up(event_id, attempt, exc, tb=traceback.format_exc())
            delay = policy.delay(attempt)
            log.warning("event=%s consumer=%s attempt=%d transient error, retry in %.2fs: %s",
                        event_id, self.consumer, attempt, delay, exc)
            self._record(deliveries.mark_retrying, event_id, error=_describe(exc))
            self._announce(event_id, deliveries.RETRYING, attempt, _describe(exc))
            raise self.retry(exc=exc, countdown=delay, max_retries=None) from exc
        except Exception as exc:  # PermanentError, or a bug: retrying cannot help
            return self._give_up(event_id, attempt, exc, tb=traceback.format_exc())
        if not first:
            log.info("event=%s consumer=%s attempt=%d finished elsewhere first; rolled back",
                     event_id, self.consumer, attempt)
            return "duplicate"
        log.info("event=%s consumer=%s attempt=%d succeeded", event_id, self.consumer, attempt)
        self._announce(event_id, deliveries.SUCCEEDED, attempt)
        return "succeeded"

    def _give_up(self, event_id: str, attempt: int, exc: BaseException, tb: str | None) -> str:
        log.error("event=%s consumer=%s attempt=%d dead letter: %s",
                  event_id, self.consumer, attempt, _describe(exc))
        self._record(deliveries.mark_dead, event_id, error=_describe(exc), traceback=tb or "")
        self._announce(event_id, deliveries.DEAD, attempt, _describe(exc))
        # Raise the cause itself, so Celery and Flower show FAILURE with the real exception.
        raise exc

    def _record(self, mark: Callable[..., None], event_id: str, **fields: Any) -> None:
        try:
            mark(runtime.current().session_factory, event_id=event_id, consumer=self.consumer, **fields)
        except DBAPIError as exc:
            # Cannot record the outcome: keep the message alive instead of losing it.
            raise self._retry_database_down(event_id, exc) from exc

    def _announce(self, event_id: str, state: str, attempt: int, error: str | None = None) -> None:
        """Tell live listeners (SSE) about the state just recorded; never raises."""
        live.announce(runtime.current().settings.redis_url, event_id=event_id, consumer=self.consumer,
                      state=state, attempts=attempt, last_error=error)

    def _retry_database_down(self, event_id: str, exc: Exception) -> Retry:
        delay = DATABASE_DOWN_BACKOFF.delay(self.request.retries + 1)
        log.warning("event=%s consumer=%s database unavailable, retry in %.2fs: %s",
                    event_id, self.consumer, delay, exc)
        return self.retry(exc=exc, countdown=delay, max_retries=None)

    def _queue(self) -> str | None:
        info = self.request.delivery_info or {}
        return info.get("routing_key") or info.get("exchange") or None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
