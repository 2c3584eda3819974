"""Retry policies: exponential backoff with full jitter, capped.

Each consumer declares its policy with its subscription (orders/subscriptions.py);
ORDERFLOW_RETRY_POLICIES (Settings.retry_policies) overrides any field per
consumer, which is also how tests shorten the waits without patching Celery.
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


# For a consumer that declares none.
FALLBACK_POLICY = RetryPolicy(max_retries=3, backoff_base=1.0, backoff_max=60.0)


def with_overrides(policy: RetryPolicy, override: Mapping[str, Any] | None, *, name: str) -> RetryPolicy:
    """`policy` (of consumer `name`) with the fields `override` names replaced; an unknown
    field is a ValueError."""
    if not override:
        return policy
    known = {f.name for f in fields(RetryPolicy)}
    unknown = set(override) - known
    if unknown:
        raise ValueError(f"unknown retry policy field(s) for {name}: {sorted(unknown)}")
    return replace(policy, **override)
