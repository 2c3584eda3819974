"""Retry policies per consumer: exponential backoff with full jitter, capped.

Defaults live here; `orderflow_retry_policies` in the Celery configuration
(env ORDERFLOW_RETRY_POLICIES) overrides any field per consumer, which is how
tests shorten the backoff without patching Celery.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class RetryPolicy:
    # Retries after the first attempt; a delivery runs at most max_retries + 1 times,
    # worker crashes included (that is what stops a poison message).
    max_retries: int
    backoff_base: float  # seconds before the first retry (before jitter)
    backoff_max: float  # cap of any single wait
    jitter: bool = True

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait after failed attempt number `attempt` (1-based): full jitter in [0, cap]."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        if not self.jitter:
            return ceiling
        return (rng or random).uniform(0, ceiling)


DEFAULT_POLICIES: dict[str, RetryPolicy] = {
    # SMTP servers throttle and greylist: be patient.
    "email": RetryPolicy(max_retries=8, backoff_base=2.0, backoff_max=300.0),
    # A database hiccup: a few quick tries.
    "inventory": RetryPolicy(max_retries=5, backoff_base=1.0, backoff_max=60.0),
    # Fire-and-forget: one retry, then a dead letter nobody is paged for.
    "analytics": RetryPolicy(max_retries=1, backoff_base=1.0, backoff_max=10.0),
}
FALLBACK_POLICY = RetryPolicy(max_retries=3, backoff_base=1.0, backoff_max=60.0)


def policy_for(consumer: str, overrides: Mapping[str, Mapping[str, Any]] | None) -> RetryPolicy:
    policy = DEFAULT_POLICIES.get(consumer, FALLBACK_POLICY)
    override = (overrides or {}).get(consumer)
    if not override:
        return policy
    known = {f.name for f in fields(RetryPolicy)}
    unknown = set(override) - known
    if unknown:
        raise ValueError(f"unknown retry policy field(s) for {consumer}: {sorted(unknown)}")
    return replace(policy, **override)
