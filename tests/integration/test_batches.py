"""Several deliveries in one message: what piles up in the outbox goes out together, and
every delivery still keeps its own record, retries and dead letter."""

from __future__ import annotations

import email
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from orders.subscriptions import ORDER_CREATED
from outbox.dead_letters import show_dead_letter
from outbox.deliveries import begin_many
from outbox.models import Delivery
from outbox.subscriptions import batch_task_id
from tasks.publisher import publish_events
from tasks.relay import relay_once
from tests.support.orders import all_final, deliveries_of, outbox_event, place, revenue_rows, states, stock
from tests.support.waiting import wait_until

# Where Redis and RabbitMQ differ (queues, countdowns, acks): run on both.
pytestmark = pytest.mark.both_brokers

CONSUMER_TASKS = {"orders.email.send_confirmation", "orders.inventory.reserve_stock",
                  "orders.analytics.record_revenue"}


def place_many(session_factory, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    return [place(session_factory).event_id for _ in range(n)]


def wait_all_final(session_factory, event_ids: list[str]) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    def done() -> dict[str, dict[str, str]] | None:
        found = {event_id: all_final(session_factory, event_id) for event_id in event_ids}
        return found if all(found.values()) else None  # type: ignore[return-value]

    return wait_until(done, timeout=30)


def mailed_events(smtp_sink) -> list[str]:  # type: ignore[no-untyped-def]
    return [email.message_from_bytes(raw)["X-Orderflow-Event"] for raw in smtp_sink.messages()]


def attempts_of(session_factory, event_id: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {consumer: d.attempts for consumer, d in deliveries_of(session_factory, event_id).items()}


def test_events_that_piled_up_go_out_as_one_message_per_consumer_and_each_runs_once(
    celery_app, runtime, worker, smtp_sink, executions
):
    mug_before = stock(runtime.session_factory, "mug")
    event_ids = place_many(runtime.session_factory, 8)

    assert relay_once(celery_app, runtime, grace_seconds=0) == 8
    final = wait_all_final(runtime.session_factory, event_ids)

    assert all(f == {"email": "succeeded", "inventory": "succeeded", "analytics": "succeeded"}
               for f in final.values())
    # Three messages for 24 deliveries: one batch per consumer queue.
    assert sorted(name for name, _ in executions.runs) == sorted(CONSUMER_TASKS)
    assert sorted(mailed_events(smtp_sink)) == sorted(event_ids)
    assert stock(runtime.session_factory, "mug") == mug_before - 2 * 8
    assert all(revenue_rows(runtime.session_factory, e) == 1 for e in event_ids)
    assert all(attempts_of(runtime.session_factory, e) == {"email": 1, "inventory": 1, "analytics": 1}
               for e in event_ids)


def test_one_delivery_per_message_when_batching_is_off(celery_app, runtime, worker, smtp_sink, executions):
    event_ids = place_many(runtime.session_factory, 3)
    events = [outbox_event(runtime.session_factory, e) for e in event_ids]

    assert publish_events(celery_app, events, batch_max=1) == 9
    wait_all_final(runtime.session_factory, event_ids)
    assert len(executions.runs) == 9


def test_a_permanently_rejected_mail_in_a_batch_is_dead_alone(celery_app, runtime, worker, smtp_sink):
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = 1, 550  # the first mail only
    event_ids = place_many(runtime.session_factory, 5)

    relay_once(celery_app, runtime, grace_seconds=0)
    final = wait_all_final(runtime.session_factory, event_ids)

    emails = {e: final[e]["email"] for e in event_ids}
    assert sorted(emails.values()) == ["dead"] + ["succeeded"] * 4, emails
    dead = next(e for e, state in emails.items() if state == "dead")
    record = deliveries_of(runtime.session_factory, dead)["email"]
    assert (record.attempts, "SMTP 550" in record.last_error) == (1, True)
    assert sorted(mailed_events(smtp_sink)) == sorted(e for e in event_ids if e != dead)
    assert all(final[e]["inventory"] == final[e]["analytics"] == "succeeded" for e in event_ids)
    # The operator page links the dead letter to the task Flower shows: the batch it died in.
    letter = show_dead_letter(runtime.session_factory, f"{dead}:email")
    assert letter["flower_task_id"] == batch_task_id(event_ids, "email")


def test_a_transient_failure_retries_that_delivery_and_the_untried_rest_keep_their_first_attempt(
    celery_app, runtime, worker, smtp_sink, use_policies
):
    use_policies({"email": {"max_retries": 3, "backoff_base": 0.2, "backoff_max": 0.2, "jitter": False}})
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = 1, 451  # greylists the first mail
    event_ids = place_many(runtime.session_factory, 5)

    relay_once(celery_app, runtime, grace_seconds=0)
    final = wait_all_final(runtime.session_factory, event_ids)

    assert all(f["email"] == "succeeded" for f in final.values())
    email_attempts = sorted(attempts_of(runtime.session_factory, e)["email"] for e in event_ids)
    # The greylisted one ran twice; the four behind it were not tried in the failed batch, so
    # their one attempt is the one that sent them.
    assert email_attempts == [1, 1, 1, 1, 2]
    assert sorted(mailed_events(smtp_sink)) == sorted(event_ids)  # each exactly once


@dataclass
class FakeEvent:
    id: str
    payload: Any
    event_type: str = ORDER_CREATED


def test_a_failing_effect_in_a_batch_is_rolled_back_alone(celery_app, runtime, worker, smtp_sink):
    """Inventory takes stock line by line: a delivery that fails after its first line must not
    keep that line's stock change, while the others in the same transaction commit theirs."""
    good, bad = place_many(runtime.session_factory, 2)
    mug_before, tee_before = stock(runtime.session_factory, "mug"), stock(runtime.session_factory, "tee")
    broken = dict(outbox_event(runtime.session_factory, bad).payload)  # type: ignore[union-attr]
    # The tee line has no quantity. (Inventory now reads the whole payload before its first
    # statement, so the mug line is not even taken; the savepoint still guards any other failure.)
    broken["lines"] = [{"sku": "mug", "quantity": 1}, {"sku": "tee"}]
    events = [FakeEvent(bad, broken), outbox_event(runtime.session_factory, good)]

    publish_events(celery_app, events, batch_max=10)
    final = wait_all_final(runtime.session_factory, [good, bad])

    assert final[bad]["inventory"] == "dead" and final[good]["inventory"] == "succeeded"
    assert deliveries_of(runtime.session_factory, bad)["inventory"].last_error == (
        "PermanentError: the order.created payload lacks 'quantity'")
    assert stock(runtime.session_factory, "mug") == mug_before - 2  # only the good order's 2 mugs
    assert stock(runtime.session_factory, "tee") == tee_before


def test_a_batch_that_comes_back_after_a_crash_is_split_into_single_deliveries(
    celery_app, runtime, worker, smtp_sink, executions
):
    """A worker died running a batch: its message comes back with an attempt counted for each
    delivery it had begun. It is split, so each delivery goes on with its own attempt cap."""
    event_ids = place_many(runtime.session_factory, 3)
    # What the dead worker left: leases taken (one attempt each), expired, nothing finished.
    begin_many(runtime.session_factory, event_ids=event_ids, consumer="inventory", queue="inventory",
               lease_seconds=-1)
    events = [outbox_event(runtime.session_factory, e) for e in event_ids]

    publish_events(celery_app, events, batch_max=10)
    final = wait_all_final(runtime.session_factory, event_ids)

    assert all(f["inventory"] == "succeeded" for f in final.values())
    inventory_runs = [name for name, queue in executions.runs if queue == "inventory"]
    assert len(inventory_runs) == 1 + 3  # the batch, then one message per delivery
    # The crashed attempt plus the one that succeeded; the split itself ran nothing.
    assert [attempts_of(runtime.session_factory, e)["inventory"] for e in event_ids] == [2, 2, 2]


def test_a_delivery_leased_by_another_worker_is_left_to_it(celery_app, runtime, worker, smtp_sink):
    """One delivery of the batch is running elsewhere (its lease is live): the batch runs the
    others and looks at that one again once the lease is over, without running it twice."""
    first, second = place_many(runtime.session_factory, 2)
    begin_many(runtime.session_factory, event_ids=[first], consumer="analytics", queue="analytics",
               lease_seconds=1.0)
    events = [outbox_event(runtime.session_factory, e) for e in (first, second)]

    publish_events(celery_app, events, batch_max=10)
    assert wait_until(lambda: states(runtime.session_factory, second).get("analytics") == "succeeded",
                      timeout=10)
    assert deliveries_of(runtime.session_factory, first)["analytics"].state == "running"

    # The "other worker" never finishes: once its lease is over, ours takes it (attempt 2).
    wait_all_final(runtime.session_factory, [first, second])
    assert attempts_of(runtime.session_factory, first)["analytics"] == 2
    assert revenue_rows(runtime.session_factory, first) == revenue_rows(runtime.session_factory, second) == 1


def test_redelivering_a_finished_batch_changes_nothing(celery_app, runtime, worker, smtp_sink, executions):
    event_ids = place_many(runtime.session_factory, 3)
    events = [outbox_event(runtime.session_factory, e) for e in event_ids]
    publish_events(celery_app, events, batch_max=10)
    wait_all_final(runtime.session_factory, event_ids)
    mug = stock(runtime.session_factory, "mug")

    publish_events(celery_app, events, batch_max=10)  # e.g. the relay sent it again
    wait_until(lambda: len(executions.runs) >= 6, timeout=10)

    assert stock(runtime.session_factory, "mug") == mug
    assert sorted(mailed_events(smtp_sink)) == sorted(event_ids)
    with runtime.session_factory() as session:
        rows = session.scalars(select(Delivery).where(Delivery.event_id.in_(event_ids))).all()
    assert len(rows) == 9 and {r.attempts for r in rows} == {1}



def test_a_slow_batch_hands_the_rest_to_a_new_message_within_its_time_budget(
    celery_app, runtime, worker, smtp_sink, executions, monkeypatch
):
    """A batch stops taking deliveries after a share of the soft time limit (0.1 s here): a slow
    mail server makes it pass the rest on, uncounted, instead of running into the limit."""
    monkeypatch.setitem(celery_app.conf, "task_soft_time_limit", 0.4)
    smtp_sink.handler.delay_seconds = 0.06
    event_ids = place_many(runtime.session_factory, 6)

    relay_once(celery_app, runtime, grace_seconds=0)
    wait_all_final(runtime.session_factory, event_ids)

    email_messages = [name for name, queue in executions.runs if queue == "email"]
    assert len(email_messages) >= 2, "the batch was cut and continued in another message"
    assert all(attempts_of(runtime.session_factory, e)["email"] == 1 for e in event_ids)
    assert sorted(mailed_events(smtp_sink)) == sorted(event_ids)
