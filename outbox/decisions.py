"""What to do when a delivery fails, or comes back: plain functions of their inputs.

The delivery task (tasks/delivery_task.py) asks these and carries out the
answer with Celery; they know nothing of Celery or of a database, so every
rule is unit-tested on its own (tests/unit/test_decisions.py):

- a transient failure is retried with the policy's backoff until the
  attempts run out; anything else is a dead letter at once;
- a delivery that has run more often than its policy allows (its worker was
  killed each time: a poison message) is a dead letter before it runs again;
- a batch that comes back with an attempt already counted (its worker died on
  it) is split into single deliveries, so each has its own attempt cap;
- in a batch, the first transient failure is retried alone and the batch
  stops there; the permanent failures are dead letters alone.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from outbox.policies import RetryPolicy

# A batch stops taking new deliveries after this share of the soft time limit (at most
# MAX_BATCH_SECONDS); the rest go on in a new message. Keeps a slow dependency from
# running a batch into its time limit.
BATCH_BUDGET_SHARE = 0.25
MAX_BATCH_SECONDS = 10.0


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds before the next attempt


@dataclass(frozen=True)
class GiveUp:
    """Dead-letter it now."""


Decision = Retry | GiveUp


def after_failure(*, transient: bool, attempt: int, policy: RetryPolicy,
                  rng: random.Random | None = None) -> Decision:
    """Attempt number `attempt` (1-based) failed: retry later, or give up."""
    if transient and attempt < policy.max_attempts:
        return Retry(policy.delay(attempt, rng))
    return GiveUp()


def over_attempt_cap(*, attempt: int, policy: RetryPolicy) -> str | None:
    """Why a delivery about to start attempt `attempt` must not run, or None if it may.

    Attempts are counted when a delivery starts, so a worker killed mid-delivery
    still spends one: a message that kills its worker every time ends here.
    """
    if attempt <= policy.max_attempts:
        return None
    return (f"delivered {attempt} times without finishing (worker lost each time?); "
            f"limit is {policy.max_attempts}")


def must_split(attempts: Iterable[int]) -> bool:
    """A batch whose deliveries already had an attempt came back after its worker died."""
    return any(attempt > 1 for attempt in attempts)


@dataclass(frozen=True)
class BatchSettlement:
    retry: str | None = None  # the one delivery retried alone (the batch stopped at it)
    bury: list[str] = field(default_factory=list)  # dead letters, in the order they failed


def settle_batch(failed: Sequence[tuple[str, bool]], policy: RetryPolicy) -> BatchSettlement:
    """`failed` is (event id, transient?) in order; a batch only ever runs first attempts."""
    retry: str | None = None
    bury: list[str] = []
    for event_id, transient in failed:
        if retry is None and isinstance(after_failure(transient=transient, attempt=1, policy=policy), Retry):
            retry = event_id
        else:
            bury.append(event_id)
    return BatchSettlement(retry, bury)


def batch_budget_seconds(soft_time_limit: float | None) -> float:
    """How long one batch may keep starting deliveries."""
    soft = float(soft_time_limit or MAX_BATCH_SECONDS * 4)
    return min(MAX_BATCH_SECONDS, soft * BATCH_BUDGET_SHARE)


def hold_delay(policy: RetryPolicy, *, times_held: int) -> float:
    """How long a payload too new for its consumer waits before it is looked at again: the
    consumer's backoff without jitter, so a rolling upgrade is noticed within one cap."""
    return min(policy.backoff_max, policy.backoff_base * 2 ** min(times_held, 30))
