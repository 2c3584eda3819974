from __future__ import annotations

import pytest
from celery import Celery

from tasks.safety import UnsafeSettings, check_or_exit, problems


def configured(**overrides) -> Celery:
    app = Celery("safety-test")
    app.config_from_object("celeryconfig")
    app.conf.update(overrides)
    return app


def test_shipped_settings_are_safe():
    assert problems(configured()) == []


def test_backoff_cap_near_visibility_timeout_is_refused_with_one_line():
    app = configured(broker_transport_options={"visibility_timeout": 320})
    with pytest.raises(UnsafeSettings) as caught:
        check_or_exit(app)
    message = str(caught.value)
    assert "\n" not in message
    assert "email: backoff cap 300s + task_time_limit 60s" in message
    assert "visibility_timeout'] 320s" in message


@pytest.mark.parametrize(
    ("setting", "value"),
    [("task_acks_late", False), ("worker_prefetch_multiplier", 4),
     ("task_serializer", "pickle"), ("accept_content", ["json", "pickle"]),
     ("worker_send_task_events", False)],
)
def test_unsafe_settings_are_named(setting, value):
    assert any(setting in p for p in problems(configured(**{setting: value})))


def test_worker_lost_wait_beyond_time_limit_is_refused():
    # Found by the poison-message fault test: with the time limit first, a killed
    # pool process's task "times out", is acknowledged, and is not redelivered.
    found = problems(configured(task_time_limit=12, task_soft_time_limit=10, worker_lost_wait=10))
    assert any("worker_lost_wait 10s + 5s (the pool's dead-process check) must stay below "
               "task_time_limit 12s" in p for p in found)


def test_a_bad_orderflow_setting_in_the_environment_is_refused_with_one_line(monkeypatch):
    monkeypatch.setenv("DELIVERY_BATCH_MAX", "0")
    with pytest.raises(UnsafeSettings) as caught:
        check_or_exit(configured())
    assert str(caught.value) == ("orderflow: refusing to start: "
                                 "DELIVERY_BATCH_MAX must be a whole number >= 1, not '0'")


def test_a_retention_shorter_than_the_retry_horizon_is_refused_at_start_up(monkeypatch):
    monkeypatch.setenv("ORDERFLOW_RETENTION", "1h")
    with pytest.raises(UnsafeSettings) as caught:
        check_or_exit(configured())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("orderflow: refusing to start: ORDERFLOW_RETENTION 3600s must exceed "
                              "the retry horizon ")
    assert "email's retries" in message and "broker visibility timeout 3600s" in message
