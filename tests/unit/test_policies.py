from __future__ import annotations

import random

import pytest

from orders.subscriptions import ANALYTICS, EMAIL
from outbox.policies import RetryPolicy
from outbox.subscriptions import policy_for


def test_backoff_doubles_and_is_capped_without_jitter():
    policy = RetryPolicy(max_retries=6, backoff_base=1.0, backoff_max=5.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_full_jitter_stays_between_zero_and_the_ceiling():
    policy = RetryPolicy(max_retries=6, backoff_base=1.0, backoff_max=5.0)
    rng = random.Random(7)
    for attempt in range(1, 8):
        ceiling = min(5.0, 2 ** (attempt - 1))
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # really spread, not a constant


def test_overrides_replace_only_the_named_fields():
    policy = policy_for("email", {"email": {"backoff_base": 0.1}})
    assert policy.backoff_base == 0.1
    assert policy.max_retries == EMAIL.policy.max_retries


def test_unknown_override_field_is_an_error():
    with pytest.raises(ValueError, match="backof"):
        policy_for("email", {"email": {"backof": 1}})


def test_analytics_is_fire_and_forget():
    assert ANALYTICS.policy.max_retries <= 1
