"""The rules of retrying, giving up and splitting: outbox/decisions.py, with no broker and no database."""

from __future__ import annotations

import random
from pathlib import Path

from outbox import decisions
from outbox.decisions import GiveUp, Retry
from outbox.policies import RetryPolicy

POLICY = RetryPolicy(max_retries=2, backoff_base=1.0, backoff_max=3.0, jitter=False)


def test_the_rules_need_neither_celery_nor_a_database_driver():
    for module in ("outbox/decisions.py", "outbox/policies.py"):
        assert not {"celery", "kombu", "sqlalchemy", "psycopg", "sqlite3"} & _imports_of(module), module


def _imports_of(relative: str) -> set[str]:
    import ast

    tree = ast.parse((Path(__file__).resolve().parents[2] / relative).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_a_transient_failure_is_retried_with_the_policys_backoff_until_the_attempts_run_out():
    assert decisions.after_failure(transient=True, attempt=1, policy=POLICY) == Retry(1.0)
    assert decisions.after_failure(transient=True, attempt=2, policy=POLICY) == Retry(2.0)
    assert decisions.after_failure(transient=True, attempt=3, policy=POLICY) == GiveUp()


def test_a_retry_waits_a_jittered_time_within_the_cap():
    jittered = RetryPolicy(max_retries=9, backoff_base=1.0, backoff_max=3.0)
    rng = random.Random(3)
    delays = [decisions.after_failure(transient=True, attempt=5, policy=jittered, rng=rng) for _ in range(50)]
    assert all(isinstance(d, Retry) and 0 <= d.delay <= 3.0 for d in delays)


def test_a_permanent_failure_is_given_up_at_once():
    assert decisions.after_failure(transient=False, attempt=1, policy=POLICY) == GiveUp()


def test_a_delivery_past_its_attempt_cap_does_not_run_again():
    assert decisions.over_attempt_cap(attempt=3, policy=POLICY) is None
    why = decisions.over_attempt_cap(attempt=4, policy=POLICY)
    assert why is not None and "delivered 4 times" in why and "limit is 3" in why


def test_a_batch_is_split_only_when_it_comes_back_with_an_attempt_spent():
    assert not decisions.must_split([1, 1, 1])
    assert decisions.must_split([1, 2, 1])
    assert not decisions.must_split([])


def test_in_a_batch_the_first_transient_failure_is_retried_and_permanent_ones_are_buried():
    settled = decisions.settle_batch([("a", False), ("b", True), ("c", False)], POLICY)
    assert settled.retry == "b"
    assert settled.bury == ["a", "c"]


def test_with_no_retries_left_a_transient_failure_in_a_batch_is_buried():
    never = RetryPolicy(max_retries=0, backoff_base=1.0, backoff_max=1.0)
    settled = decisions.settle_batch([("a", True)], never)
    assert (settled.retry, settled.bury) == (None, ["a"])


def test_a_batch_stops_starting_deliveries_after_a_share_of_the_soft_time_limit():
    assert decisions.batch_budget_seconds(20) == 5.0
    assert decisions.batch_budget_seconds(600) == decisions.MAX_BATCH_SECONDS
    assert decisions.batch_budget_seconds(None) == decisions.MAX_BATCH_SECONDS
