"""Fault 6: a backoff configured close to the visibility timeout is refused at start-up.

Redis hands an unacknowledged message out again after the visibility timeout:
a retry waiting longer than that would run twice. The worker and the relay
refuse such settings with one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from config.settings import PROJECT_ROOT

PREFIX = "orderflow: refusing to start: "


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("ORDERFLOW_RETRY_POLICIES",)}
    return subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean, "REDIS_URL": "redis://127.0.0.1:1/0",
                               "DATABASE_URL": "sqlite:///:memory:", **env})


def refusal(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result
    lines = [line for line in result.stderr.splitlines() if line.startswith(PREFIX)]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-Q", "email", "--loglevel", "INFO"],
    [sys.executable, "-m", "tasks.relay"],
], ids=["worker", "relay"])
def test_backoff_close_to_visibility_timeout_is_refused_with_one_line(command):
    policies = '{"email": {"backoff_max": 3580}}'
    line = refusal(run(command, ORDERFLOW_RETRY_POLICIES=policies, BROKER_VISIBILITY_TIMEOUT="3600"))
    assert ("email: backoff cap 3580s + task_time_limit 60s must stay below "
            "broker_transport_options['visibility_timeout'] 3600s") in line


def test_reconciler_deadline_shorter_than_a_retry_wait_is_refused():
    line = refusal(run([sys.executable, "-m", "tasks.relay"], RECONCILE_AFTER_SECONDS="120"))
    assert "RECONCILE_AFTER_SECONDS 120 must exceed" in line
