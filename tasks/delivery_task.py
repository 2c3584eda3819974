"""The base class of every consumer task: carries out outbox's decisions with Celery.

A consumer task is generated from its declaration (tasks/consumer_tasks.py)
and calls `self.handle(...)` with its handler. The rules of *when* to run,
retry or give up are plain functions in outbox/decisions.py; this class
applies them with the delivery record (outbox/deliveries.py) and Celery:

- `begin` counts the attempt and takes a lease; a final delivery is acked and
  forgotten (redelivery is harmless), a leased one is looked at again later.
- TransientError (and a database that does not answer, and the soft time
  limit) -> `self.retry` with the consumer's backoff until its attempts run
  out -> dead letter. Anything else -> dead letter at once, with the traceback.
- More attempts than the policy allows (a worker killed mid-task each time) ->
  dead letter before running again.

Celery re-raises the original exception when retries run out, so "gave up" is
decided from the delivery record, never from Celery's counters.

Before anything begins, tasks/consumer_gate.py may hold the message (consumer
paused, circuit breaker open: no attempt counted) or pass part of it on (rate
limit); each outcome is told to the breaker, and a transient failure while it
is open is held with its attempt given back instead of retried.

Under load the relay packs several deliveries of one consumer into one message
(`batch=[[event_id, payload], ...]`, see tasks/publisher.py): Celery's own cost
per message (receive, late ack, task events) is then paid once per batch, not
once per delivery. The rules stay per delivery (`deliver_batch`):

- one upsert begins them all; the effects run in one transaction (a failing
  one rolled back alone) and all successes are recorded in one UPDATE in it;
- a permanent failure dead-letters that delivery alone, the others go on;
- the first transient failure stops the batch: that delivery is retried as a
  one-delivery message of the same task (`self.retry`, so Flower shows the
  RETRY), the untried rest go on in a new message with their attempt uncounted;
- a batch that comes back with an attempt already counted (a worker died on
  it) is split into one message per delivery before anything runs, so a poison
  delivery cannot take the others down with it: each then has its own
  attempt cap.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded
from celery.utils.log import get_task_logger
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from outbox import decisions, deliveries, status_feed, tracing, versions
from outbox.db import SessionFactory
from outbox.deliveries import BatchOutcome, Start
from outbox.errors import PermanentError, TransientError
from outbox.policies import RetryPolicy
from outbox.states import DEAD, PENDING, RETRYING, RUNNING, SUCCEEDED
from outbox.subscriptions import Handler, batch_task_id, policy_for, task_id_for
from tasks import consumer_gate, runtime
from tasks.delays import broker_countdown

log = get_task_logger(__name__)

Effect = Callable[[Session], Any]
BatchItems = Sequence[Sequence[Any]]  # [[event_id, payload], ...] as the message carries it

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
        return policy_for(self.consumer, runtime.current().settings.retry_policies)

    def handle(self, event_id: str | None, payload: Any, batch: BatchItems | None, handler: Handler, *,
               effects_in_database: bool = True) -> Any:
        """The body of a consumer task: one delivery (`event_id`, `payload`) or a `batch`.

        `effects_in_database=False` says the handler acts outside the database only
        (and never uses the session): a batch then needs no savepoints.
        """
        if batch is None and event_id is None:
            raise TypeError(f"{self.name} needs an event id and payload, or a batch")
        items = [(str(e), p) for e, p in batch] if batch is not None else [(str(event_id), payload)]
        # Paused, breaker open, rate limit: held or passed on before any attempt is counted.
        try:
            admitted = consumer_gate.admit(self, items, self._queue())
        except DBAPIError as exc:  # the state cannot be read: wait for the database like `begin` does
            raise self._retry_database_down(items[0][0], exc) from exc
        if admitted is None:
            return "held"
        if batch is not None:
            return self.deliver_batch(admitted.items, handler, effects_in_database=effects_in_database,
                                      probe=admitted.probe)
        one, probe = str(event_id), admitted.probe
        if tracing.enabled():
            return self._traced_attempt(one, lambda: self._handle_one(one, payload, handler, probe=probe))
        return self._handle_one(one, payload, handler, probe=probe)

    def _handle_one(self, event_id: str, payload: Any, handler: Handler, *, probe: bool = False) -> Any:
        verdict = versions.read_for(self.consumer, payload)
        if isinstance(verdict, versions.TooNew):
            return self._hold(event_id, verdict)
        versioned = _versioned(handler, {event_id: verdict})
        return self.deliver(event_id, lambda session: versioned(session, event_id, payload), payload=payload,
                            probe=probe)

    def _traced_attempt(self, event_id: str, run: Callable[[], Any]) -> Any:
        """This attempt as a span of the order's trace (the publish span carried in the headers)."""
        with tracing.span(f"deliver {self.consumer}", parent=self._trace_parent(event_id), kind="consumer",
                          attributes={"orderflow.consumer": self.consumer, "orderflow.event_id": event_id,
                                      "orderflow.task_id": self.request.id or ""}) as span:
            try:
                result = run()
            except Retry:
                if "orderflow.outcome" not in (getattr(span, "attributes", None) or {}):
                    tracing.annotate(span, outcome="retrying")
                raise
            except BaseException:
                tracing.annotate(span, outcome="dead")
                raise
            tracing.annotate(span, outcome=str(result))
            return result

    def _trace_parent(self, event_id: str) -> str | None:
        carried = self.request.get(tracing.HEADER) or (self.request.headers or {}).get(tracing.HEADER)
        return carried.get(event_id) if isinstance(carried, dict) else None

    def _trace_headers(self, event_ids: list[str]) -> dict[str, Any]:
        """What a message this task sends on must carry so its deliveries stay in their traces."""
        parents = {event_id: self._trace_parent(event_id) for event_id in event_ids}
        carried = {event_id: parent for event_id, parent in parents.items() if parent}
        return {"headers": {tracing.HEADER: carried}} if carried else {}

    def deliver(self, event_id: str, effect: Effect, *, payload: Any = None, probe: bool = False) -> str:
        """Run `effect` once for (event_id, this consumer); returns the outcome.

        `probe`: the one delivery a half-open breaker lets through (tasks/consumer_gate.py).

        `effect(session)` runs inside the transaction that marks the delivery
        succeeded: database effects commit together with the record.
        """
        rt = runtime.current()
        policy = self.policy()
        try:
            begun = deliveries.begin(
                self._sessions(), event_id=event_id, consumer=self.consumer,
                queue=self._queue(), lease_seconds=rt.settings.lease_seconds, task_id=self.request.id,
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
        tracing.annotate(attempt=attempt, delivery_id=begun.delivery_id)
        too_many = decisions.over_attempt_cap(attempt=attempt, policy=policy)
        if too_many:
            return self._give_up(event_id, attempt, GaveUp(too_many), tb=None)
        self._announce(event_id, RUNNING, attempt)
        return self._run(event_id, attempt, policy, effect, payload=payload, probe=probe)

    def deliver_batch(self, batch: BatchItems, handler: Handler, *,
                      effects_in_database: bool = True, probe: bool = False) -> dict[str, int]:
        """Several deliveries of this consumer from one message; returns counts per outcome."""
        items = [(str(event_id), payload) for event_id, payload in batch]
        verdicts = {event_id: versions.read_for(self.consumer, payload) for event_id, payload in items}
        too_new = [(e, p) for e, p in items if isinstance(verdicts[e], versions.TooNew)]
        for event_id, payload in too_new:  # one message each, held visibly by the single-delivery path
            self._send_one(event_id, payload)
        items = [(e, p) for e, p in items if not isinstance(verdicts[e], versions.TooNew)]
        handler = _versioned(handler, verdicts)
        payloads = dict(items)
        rt = runtime.current()
        try:
            begun = deliveries.begin_many(
                self._sessions(), event_ids=list(payloads), consumer=self.consumer,
                queue=self._queue(), lease_seconds=rt.settings.lease_seconds, task_id=self.request.id,
            )
        except DBAPIError as exc:
            raise self._retry_database_down(f"batch of {len(items)}", exc) from exc
        counts = {"succeeded": 0, "duplicate": 0, "dead": 0, "retrying": 0, "passed_on": len(too_new),
                  "held": 0}
        for event_id, found in begun.items():
            if found.start is Start.DONE:
                counts["duplicate"] += 1
            elif found.start is Start.BUSY:  # another copy holds it: look again after its lease
                self._send_one(event_id, payloads[event_id], countdown=found.retry_in)
                counts["passed_on"] += 1
        run = [(event_id, payloads[event_id]) for event_id in payloads
               if begun[event_id].start is Start.RUN]
        if decisions.must_split(begun[event_id].attempts for event_id, _ in run):
            # Only a redelivery of this very message counts a second attempt: a worker died
            # running it. Split it, so that each delivery has its own attempt cap.
            log.warning("consumer=%s batch of %d redelivered; splitting it into single deliveries",
                        self.consumer, len(run))
            self._pass_on(run, one_by_one=True)
            counts["passed_on"] += len(run)
            return counts
        if not run:
            return counts
        spans = {event_id: tracing.start(
            f"deliver {self.consumer}", parent=self._trace_parent(event_id), kind="consumer",
            attributes={"orderflow.consumer": self.consumer, "orderflow.event_id": event_id,
                        "orderflow.attempt": begun[event_id].attempts, "orderflow.batch_size": len(run),
                        "orderflow.delivery_id": begun[event_id].delivery_id or 0,
                        "orderflow.task_id": self.request.id or ""})
            for event_id, _ in run} if tracing.enabled() else {}
        outcomes: dict[str, str] = {}
        try:
            self._announce_all([event_id for event_id, _ in run], RUNNING)
            outcome = self._run_batch(run, handler, effects_in_database)
            if outcome.conflict:
                counts["passed_on"] += len(run)
                return counts
            self._announce_all(outcome.succeeded, SUCCEEDED)
            if outcome.succeeded:
                consumer_gate.succeeded(self.consumer, probe=probe)
            counts["succeeded"] += len(outcome.succeeded)
            outcomes.update(dict.fromkeys(outcome.succeeded, "succeeded"))
            if outcome.untried:
                self._pass_on([(event_id, payloads[event_id]) for event_id in outcome.untried])
                counts["passed_on"] += len(outcome.untried)
            log.info("consumer=%s batch of %d: %s", self.consumer, len(items), counts)
            return self._settle_failures(outcome, payloads, counts, outcomes, probe=probe)
        finally:
            for event_id, span in spans.items():
                tracing.end(span, outcome=outcomes.get(event_id, "passed_on"))

    def _hold(self, event_id: str, verdict: versions.TooNew) -> str:
        """A payload newer than this consumer understands: record why, give the attempt back,
        and look again later, until an upgraded worker takes it (never a dead letter)."""
        rt = runtime.current()
        try:
            begun = deliveries.begin(
                self._sessions(), event_id=event_id, consumer=self.consumer,
                queue=self._queue(), lease_seconds=rt.settings.lease_seconds, task_id=self.request.id,
            )
            if begun.start is Start.DONE:
                return "duplicate"
            why = verdict.describe(self.consumer)
            if begun.start is Start.RUN:
                deliveries.release(self._sessions(), event_ids=[event_id], consumer=self.consumer, note=why)
        except DBAPIError as exc:
            raise self._retry_database_down(event_id, exc) from exc
        delay = decisions.hold_delay(self.policy(), times_held=self.request.retries or 0)
        log.warning("event=%s consumer=%s %s; looking again in %.1fs", event_id, self.consumer, why, delay)
        tracing.annotate(outcome="held", delivery_id=begun.delivery_id)
        self._announce(event_id, PENDING, max(0, begun.attempts - 1), why)
        raise self.retry(countdown=delay, max_retries=None)

    def _run_batch(self, run: list[tuple[str, Any]], handler: Handler,
                   effects_in_database: bool) -> BatchOutcome:
        started = time.monotonic()
        budget = decisions.batch_budget_seconds(self.app.conf.get("task_soft_time_limit"))
        try:
            outcome = deliveries.deliver_many(
                self._sessions(), consumer=self.consumer, items=run, handler=handler,
                stop_after=_is_transient, out_of_time=lambda: time.monotonic() - started > budget,
                effects_in_database=effects_in_database,
            )
        except DBAPIError as exc:
            # The transaction is lost (effects rolled back); try the whole message again.
            self._release([event_id for event_id, _ in run])
            raise self._retry_database_down(f"batch of {len(run)}", exc) from exc
        if outcome.conflict:
            # Someone else recorded some of them meanwhile; nothing of ours was committed.
            # One message per delivery sorts out which still need to run.
            self._pass_on(run, one_by_one=True)
        return outcome

    def _settle_failures(self, outcome: BatchOutcome, payloads: dict[str, Any],
                         counts: dict[str, int], outcomes: dict[str, str], *,
                         probe: bool = False) -> dict[str, int]:
        """Dead-letter the permanent failures; retry the transient one (at most one: the batch
        stopped there) as a single-delivery message of this task, which Flower shows as RETRY."""
        policy = self.policy()
        failures = {event_id: (exc, tb) for event_id, exc, tb in outcome.failed}
        held = [event_id for event_id, exc, _tb in outcome.failed
                if consumer_gate.failed(self.consumer, exc, probe=probe)]
        for event_id in held:  # the breaker is open: the outage's failure, not the message's
            consumer_gate.hold_failed(self, (event_id, payloads[event_id]), self._queue(),
                                      _describe(failures[event_id][0]))
            counts["held"] += 1
            outcomes[event_id] = "held"
        settled = decisions.settle_batch(
            [(event_id, _is_transient(exc)) for event_id, exc, _tb in outcome.failed if event_id not in held],
            policy)
        first_dead: BaseException | None = None
        for event_id in settled.bury:
            exc, tb = failures[event_id]
            self._bury(event_id, 1, exc, tb)  # a batch only ever runs first attempts
            counts["dead"] += 1
            outcomes[event_id] = "dead"
            first_dead = first_dead or exc
        if settled.retry is not None:
            event_id, exc = settled.retry, failures[settled.retry][0]
            counts["retrying"] += 1
            outcomes[event_id] = "retrying"
            delay = policy.delay(1)
            log.warning("event=%s consumer=%s attempt=1 transient error in a batch, retry in %.2fs: %s",
                        event_id, self.consumer, delay, _describe(exc))
            self._record(deliveries.mark_retrying, event_id, error=_describe(exc))
            self._announce(event_id, RETRYING, 1, _describe(exc))
            raise self.retry(args=[event_id, payloads[event_id]], kwargs={}, exc=exc, countdown=delay,
                             max_retries=None, **self._trace_headers([event_id])) from exc
        if first_dead is not None:
            # Everything is recorded; raising shows the batch as FAILURE in Flower with the cause.
            raise first_dead
        return counts

    def _pass_on(self, items: list[tuple[str, Any]], *, one_by_one: bool = False) -> None:
        """Hand deliveries whose effect did not run to a new message, their attempt uncounted."""
        self._release([event_id for event_id, _ in items])
        if one_by_one or len(items) == 1:
            for event_id, payload in items:
                self._send_one(event_id, payload)
            return
        ids = [event_id for event_id, _ in items]
        # Flower shows the event ids (searchable), as for a batch the relay sent.
        self.apply_async(kwargs={"batch": [list(item) for item in items]},
                         task_id=batch_task_id(ids, self.consumer), queue=self._queue(),
                         kwargsrepr=f"{{'batch': {ids!r}}}", **self._trace_headers(ids))

    def _send_one(self, event_id: str, payload: Any, countdown: float | None = None) -> None:
        self.apply_async(args=[event_id, payload], task_id=task_id_for(event_id, self.consumer),
                         queue=self._queue(), countdown=broker_countdown(self.app, countdown),
                         **self._trace_headers([event_id]))

    def retry(self, *args: Any, countdown: float | None = None, **kwargs: Any) -> Retry:  # type: ignore[override]
        # Whole seconds on RabbitMQ quorum queues, or the retry is lost (tasks/delays.py).
        return super().retry(*args, countdown=broker_countdown(self.app, countdown), **kwargs)

    def _release(self, event_ids: list[str]) -> None:
        try:
            deliveries.release(self._sessions(), event_ids=event_ids,
                               consumer=self.consumer)
        except DBAPIError:
            # Their leases run out on their own; the messages sent next wait for that.
            log.warning("consumer=%s could not release %d lease(s); they expire", self.consumer,
                        len(event_ids))

    def _bury(self, event_id: str, attempt: int, exc: BaseException, tb: str | None) -> None:
        log.error("event=%s consumer=%s attempt=%d dead letter: %s",
                  event_id, self.consumer, attempt, _describe(exc))
        self._record(deliveries.mark_dead, event_id, error=_describe(exc), traceback=tb or "")
        self._announce(event_id, DEAD, attempt, _describe(exc))

    def _announce_all(self, event_ids: list[str], state: str) -> None:
        if event_ids:
            status_feed.announce_many(runtime.current().settings.status_feed_url, [
                status_feed.status_message(event_id=event_id, consumer=self.consumer, state=state, attempts=1,
                                    last_error=None)
                for event_id in event_ids
            ])

    def _run(self, event_id: str, attempt: int, policy: RetryPolicy, effect: Effect, *,
             payload: Any = None, probe: bool = False) -> str:
        try:
            first = deliveries.deliver(
                self._sessions(), event_id=event_id, consumer=self.consumer,
                effect=effect,
            )
        except Retry:
            raise
        except Exception as exc:  # PermanentError, or a bug, is given up at once
            if consumer_gate.failed(self.consumer, exc, probe=probe):
                consumer_gate.hold_failed(self, (event_id, payload), self._queue(), _describe(exc))
                tracing.annotate(outcome="held")
                return "held"
            decision = decisions.after_failure(transient=_is_transient(exc), attempt=attempt, policy=policy)
            if isinstance(decision, decisions.GiveUp):
                return self._give_up(event_id, attempt, exc, tb=traceback.format_exc())
            delay = decision.delay
            log.warning("event=%s consumer=%s attempt=%d transient error, retry in %.2fs: %s",
                        event_id, self.consumer, attempt, delay, exc)
            self._record(deliveries.mark_retrying, event_id, error=_describe(exc))
            self._announce(event_id, RETRYING, attempt, _describe(exc))
            raise self.retry(exc=exc, countdown=delay, max_retries=None) from exc
        if not first:
            log.info("event=%s consumer=%s attempt=%d finished elsewhere first; rolled back",
                     event_id, self.consumer, attempt)
            return "duplicate"
        log.info("event=%s consumer=%s attempt=%d succeeded", event_id, self.consumer, attempt)
        consumer_gate.succeeded(self.consumer, probe=probe)
        self._announce(event_id, SUCCEEDED, attempt)
        return "succeeded"

    def _give_up(self, event_id: str, attempt: int, exc: BaseException, tb: str | None) -> str:
        self._bury(event_id, attempt, exc, tb)
        # Raise the cause itself, so Celery and Flower show FAILURE with the real exception.
        raise exc

    def _record(self, mark: Callable[..., None], event_id: str, **fields: Any) -> None:
        try:
            mark(self._sessions(), event_id=event_id, consumer=self.consumer, **fields)
        except DBAPIError as exc:
            # Cannot record the outcome: keep the message alive instead of losing it.
            raise self._retry_database_down(event_id, exc) from exc

    def _announce(self, event_id: str, state: str, attempt: int, error: str | None = None) -> None:
        """Tell live listeners (SSE) about the state just recorded; never raises."""
        status_feed.announce(runtime.current().settings.status_feed_url, event_id=event_id,
                             consumer=self.consumer, state=state, attempts=attempt, last_error=error)

    def _retry_database_down(self, event_id: str, exc: Exception) -> Retry:
        delay = DATABASE_DOWN_BACKOFF.delay(self.request.retries + 1)
        log.warning("event=%s consumer=%s database unavailable, retry in %.2fs: %s",
                    event_id, self.consumer, delay, exc)
        return self.retry(exc=exc, countdown=delay, max_retries=None)

    def _sessions(self) -> SessionFactory:
        """This consumer's service's database: its delivery records and its effects."""
        return runtime.current().sessions_of(self.consumer)

    def _queue(self) -> str | None:
        info = self.request.delivery_info or {}
        key = info.get("routing_key") or info.get("exchange") or None
        # A message that waited in RabbitMQ's native delayed delivery (a countdown on a
        # quorum queue) carries its delay's bits before the queue's name: "0.1.….email".
        return DELAYED_ROUTING_PREFIX.sub("", key) if key else None


DELAYED_ROUTING_PREFIX = re.compile(r"^(?:[01]\.){28}")


def _versioned(handler: Handler, verdicts: dict[str, versions.Verdict]) -> Handler:
    """The handler as it sees payloads: upcast to the version it accepts; an unreadable one
    fails permanently (a dead letter saying why) instead of reaching it."""
    def run(session: Session, event_id: str, _payload: Any) -> Any:
        verdict = verdicts[event_id]
        if isinstance(verdict, versions.Readable):
            return handler(session, event_id, verdict.payload)
        reason = verdict.reason if isinstance(verdict, versions.Unreadable) else str(verdict)
        raise PermanentError(reason)

    return run


def _is_transient(exc: BaseException) -> bool:
    """Worth trying again later (and a sign that the next deliveries would fail the same way)."""
    return isinstance(exc, (TransientError, DBAPIError, SoftTimeLimitExceeded))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
