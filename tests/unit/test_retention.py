"""The retention's arithmetic: the retry horizon, the refusal, the cutoff, the duration forms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from config.settings import Settings, format_duration, parse_duration
from outbox.policies import RetryPolicy
from outbox.retention import prune_cutoff, retention_problem, retries_seconds, retry_horizon


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400),
                                               ("0s", 0), ("45", 45), (" 1.5h ", 5400)])
def test_durations_read_in_the_usual_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30 days", "-1d", "1w", "d"])
def test_a_bad_duration_names_the_variable(text):
    with pytest.raises(ValueError, match="ORDERFLOW_RETENTION must be a duration like 30d"):
        parse_duration(text, name="ORDERFLOW_RETENTION")


def test_retention_from_the_environment_defaults_to_30_days():
    assert Settings.from_env({}).retention_seconds == 30 * 86400
    assert Settings.from_env({"ORDERFLOW_RETENTION": "12h"}).retention_seconds == 43200
    assert format_duration(30 * 86400) == "30d" and format_duration(5400) == "90m"


def test_retries_sum_every_capped_wait_and_every_attempt_at_its_time_limit():
    policy = RetryPolicy(max_retries=4, backoff_base=2.0, backoff_max=10.0)
    # waits 2, 4, 8, 10 (capped); 5 attempts of at most 60 s
    assert retries_seconds(policy, task_time_limit=60) == 24 + 300


def test_the_horizon_is_the_slowest_consumer_plus_redelivery_plus_reconcile():
    policies = {"quick": RetryPolicy(max_retries=1, backoff_base=1, backoff_max=1),
                "patient": RetryPolicy(max_retries=3, backoff_base=100, backoff_max=150)}
    horizon = retry_horizon(policies, task_time_limit=10, visibility_timeout=3600, reconcile_after=600)
    assert horizon.consumer == "patient"
    assert horizon.retries_seconds == 100 + 150 + 150 + 4 * 10
    assert horizon.seconds == 440 + 3600 + 600


def test_a_retention_within_the_horizon_is_refused_with_one_line_naming_it():
    horizon = retry_horizon({"email": RetryPolicy(max_retries=1, backoff_base=5, backoff_max=5)},
                            task_time_limit=60, visibility_timeout=3600, reconcile_after=600)
    problem = retention_problem(0, horizon, name="--older-than")
    assert problem is not None and "\n" not in problem
    assert problem.startswith("--older-than 0s must exceed the retry horizon 4325s = email's retries 125s")
    assert "visibility timeout 3600s" in problem and "RECONCILE_AFTER_SECONDS 600s" in problem
    assert retention_problem(horizon.seconds, horizon) is not None  # equal is not enough
    assert retention_problem(horizon.seconds + 1, horizon) is None


def test_the_cutoff_is_now_minus_the_retention():
    now = datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert prune_cutoff(now, 30 * 86400) == datetime(2026, 3, 1, 12, tzinfo=UTC)
