from __future__ import annotations

import pytest
from celery import Celery

from config.settings import Settings
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


# --- RabbitMQ: no visibility timeout; consumer timeout, heartbeat and confirms instead ---

def on_rabbitmq(settings: Settings | None = None, **overrides) -> Celery:
    import celeryconfig

    rabbit = settings or Settings(database_url="", broker_url="amqp://guest:guest@127.0.0.1:5672/x")
    return configured(**{**celeryconfig.broker_conf(rabbit), **overrides})


def test_shipped_settings_are_safe_on_rabbitmq():
    app = on_rabbitmq()
    assert app.conf.broker_transport_options == {"confirm_publish": True}
    assert problems(app) == []


def test_rabbitmq_ignores_the_visibility_timeout_rule():
    # Redis's rule does not apply: RabbitMQ returns an unacked message when the connection closes.
    assert problems(on_rabbitmq(broker_transport_options={"confirm_publish": True,
                                                          "visibility_timeout": 10})) == []


def test_rabbitmq_without_publisher_confirms_is_refused():
    found = problems(on_rabbitmq(broker_transport_options={}))
    assert any("confirm_publish" in p for p in found)


def test_rabbitmq_without_heartbeats_is_refused_with_one_line():
    with pytest.raises(UnsafeSettings) as caught:
        check_or_exit(on_rabbitmq(broker_heartbeat=0))
    assert "\n" not in str(caught.value)
    assert "BROKER_HEARTBEAT must be > 0 on RabbitMQ" in str(caught.value)


def test_time_limit_beyond_the_consumer_timeout_is_refused():
    settings = Settings(database_url="", broker_url="amqp://h/v", rabbitmq_consumer_timeout=50)
    found = problems(on_rabbitmq(settings), settings)
    assert any("email: task_time_limit 60s must stay below RABBITMQ_CONSUMER_TIMEOUT 50s" in p
               for p in found)


def test_classic_queues_count_the_backoff_held_by_the_worker():
    # Without native delayed delivery the worker holds a countdown's message unacked.
    settings = Settings(database_url="", broker_url="amqp://h/v", rabbitmq_queue_type="classic",
                        rabbitmq_consumer_timeout=300)
    found = problems(on_rabbitmq(settings), settings)
    assert any("email: backoff cap + task_time_limit 360s must stay below "
               "RABBITMQ_CONSUMER_TIMEOUT 300s" in p for p in found)
    quorum = Settings(database_url="", broker_url="amqp://h/v", rabbitmq_consumer_timeout=300)
    assert problems(on_rabbitmq(quorum), quorum) == []


def test_a_bad_queue_type_is_refused(monkeypatch):
    monkeypatch.setenv("RABBITMQ_QUEUE_TYPE", "stream")
    with pytest.raises(UnsafeSettings, match="RABBITMQ_QUEUE_TYPE must be one of quorum, classic"):
        check_or_exit(configured())


def test_a_retention_shorter_than_the_retry_horizon_is_refused_at_start_up(monkeypatch):
    monkeypatch.setenv("ORDERFLOW_RETENTION", "1h")
    with pytest.raises(UnsafeSettings) as caught:
        check_or_exit(configured())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("orderflow: refusing to start: ORDERFLOW_RETENTION 3600s must exceed "
                              "the retry horizon ")
    # email and customer_mail share the longest policy (SMTP): either names the horizon.
    assert ("email's retries" in message or "customer_mail's retries" in message)
    assert "broker visibility timeout 3600s" in message
