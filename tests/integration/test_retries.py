"""Each consumer's retry policy, against a real SMTP server that answers what we script."""

from __future__ import annotations

import math

import pytest

from tasks.relay import relay_once
from tests.support.orders import all_final, deliveries_of, place, revenue_rows, stock
from tests.support.waiting import wait_until

pytestmark = pytest.mark.both_brokers


def whole_seconds_on_rabbitmq(broker_kind: str, waits: list[float]) -> list[float]:
    """RabbitMQ quorum queues count a countdown in whole seconds, rounded up (tasks/delays.py)."""
    return [float(math.ceil(w)) for w in waits] if broker_kind == "rabbitmq" else waits


def slack_on(broker_kind: str, slack: float) -> float:
    """A delayed message on RabbitMQ crosses Celery's ladder of TTL queues (dead-lettering at
    each expiry): on a loaded machine that adds up to about a second more than on Redis."""
    return slack + 1.0 if broker_kind == "rabbitmq" else slack


def test_email_greylisted_twice_succeeds_on_third_attempt_with_backoff(
    celery_app, runtime, worker, smtp_sink, use_policies, broker_kind
):
    use_policies({"email": {"max_retries": 4, "backoff_base": 0.3, "backoff_max": 2.0, "jitter": False}})
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = 2, 451
    placed = place(runtime.session_factory)

    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(runtime.session_factory, placed.event_id))

    email = deliveries_of(runtime.session_factory, placed.event_id)["email"]
    assert (email.state, email.attempts) == ("succeeded", 3)
    assert len(smtp_sink.messages()) == 1
    first, second, third = smtp_sink.handler.attempts
    # Policy without jitter: 0.3 s after attempt 1, 0.6 s after attempt 2 (plus delivery latency).
    after_first, after_second = whole_seconds_on_rabbitmq(broker_kind, [0.3, 0.6])
    assert after_first <= second - first < after_first + slack_on(broker_kind, 1.0)
    assert after_second <= third - second < after_second + slack_on(broker_kind, 1.0)


def test_email_jittered_delays_stay_within_the_policy_ceiling(
    celery_app, runtime, worker, smtp_sink, use_policies, broker_kind
):
    use_policies({"email": {"max_retries": 4, "backoff_base": 0.4, "backoff_max": 0.5}})
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = 3, 421
    placed = place(runtime.session_factory)

    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(runtime.session_factory, placed.event_id))

    times = smtp_sink.handler.attempts
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 3
    # Ceilings 0.4, 0.5 (capped), 0.5: a jittered wait never exceeds its ceiling.
    for gap, ceiling in zip(gaps, whole_seconds_on_rabbitmq(broker_kind, [0.4, 0.5, 0.5]), strict=True):
        assert gap < ceiling + slack_on(broker_kind, 0.75), gaps


def test_email_rejected_permanently_is_dead_after_one_attempt_others_unaffected(
    celery_app, runtime, worker, smtp_sink
):
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = -1, 550
    before = stock(runtime.session_factory, "mug")
    placed = place(runtime.session_factory)

    relay_once(celery_app, runtime, grace_seconds=0)
    final = wait_until(lambda: all_final(runtime.session_factory, placed.event_id))

    assert final == {"email": "dead", "inventory": "succeeded", "analytics": "succeeded"}
    email = deliveries_of(runtime.session_factory, placed.event_id)["email"]
    assert email.attempts == 1
    assert len(smtp_sink.handler.attempts) == 1
    assert "550" in email.last_error
    assert "PermanentError" in email.traceback
    assert stock(runtime.session_factory, "mug") == before - 2
    assert revenue_rows(runtime.session_factory, placed.event_id) == 1


def test_email_retries_exhausted_leaves_dead_letter_with_last_error(
    celery_app, runtime, worker, smtp_sink, use_policies
):
    use_policies({"email": {"max_retries": 2, "backoff_base": 0.1, "backoff_max": 0.2}})
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = -1, 452
    placed = place(runtime.session_factory)

    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(runtime.session_factory, placed.event_id))

    email = deliveries_of(runtime.session_factory, placed.event_id)["email"]
    assert (email.state, email.attempts) == ("dead", 3)
    assert len(smtp_sink.handler.attempts) == 3
    assert "SMTP 452" in email.last_error
    assert "TransientError" in email.traceback
    assert smtp_sink.messages() == []


def test_email_server_down_is_retried_not_dead_lettered(
    celery_app, runtime, worker, smtp_sink, use_policies
):
    use_policies({"email": {"max_retries": 20, "backoff_base": 0.1, "backoff_max": 0.3}})
    smtp_sink.stop()  # connection refused
    placed = place(runtime.session_factory)
    relay_once(celery_app, runtime, grace_seconds=0)

    retrying = wait_until(
        lambda: (d := deliveries_of(runtime.session_factory, placed.event_id).get("email"))
        and d.state == "retrying" and d.attempts >= 2 and d,
        message="email retrying while SMTP is down",
    )
    assert "SMTP unreachable" in retrying.last_error
    smtp_sink.start()
    wait_until(lambda: deliveries_of(runtime.session_factory, placed.event_id)["email"].state
               == "succeeded", message="email delivered once SMTP is back")
    assert len(smtp_sink.messages()) == 1
