"""The reconciler's rule, on both databases: which deliveries are overdue, and only those."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from outbox import deliveries
from outbox.clock import utcnow
from outbox.models import Delivery, OutboxEvent
from outbox.reconcile import find_overdue, mark_republished
from tasks.republisher import reconcile_once
from tests.support.orders import all_final, deliveries_of, place
from tests.support.waiting import wait_until

AFTER = 10.0


def published(session_factory, event_id: str, seconds_ago: float | None) -> None:
    when = None if seconds_ago is None else utcnow() - timedelta(seconds=seconds_ago)
    with session_factory.begin() as session:
        session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(published_at=when))


def delivery(session_factory, event_id: str, consumer: str, *, state: str, updated_ago: float,
             lease_in: float | None = None) -> None:
    deliveries.begin(session_factory, event_id=event_id, consumer=consumer, queue=consumer,
                     lease_seconds=60)
    now = utcnow()
    with session_factory.begin() as session:
        session.execute(update(Delivery).where(Delivery.event_id == event_id, Delivery.consumer == consumer)
                        .values(state=state, updated_at=now - timedelta(seconds=updated_ago),
                                lease_until=None if lease_in is None else now + timedelta(seconds=lease_in)))


def overdue(session_factory) -> set[tuple[str, str]]:
    found = find_overdue(session_factory, after_seconds=AFTER, horizon_seconds=3600, limit=100)
    return {(o.subscriber.consumer, o.state) for o in found}


def test_published_long_ago_with_no_delivery_is_overdue_for_every_consumer(session_factory):
    placed = place(session_factory)
    published(session_factory, placed.event_id, 20)
    assert overdue(session_factory) == {("email", "missing"), ("inventory", "missing"),
                                        ("analytics", "missing")}


@pytest.mark.parametrize("seconds_ago", [None, 5, 7200])
def test_unpublished_recent_or_beyond_horizon_events_are_left_alone(session_factory, seconds_ago):
    placed = place(session_factory)
    published(session_factory, placed.event_id, seconds_ago)
    assert overdue(session_factory) == set()


def test_only_stuck_deliveries_are_overdue(session_factory):
    placed = place(session_factory)
    published(session_factory, placed.event_id, 60)
    delivery(session_factory, placed.event_id, "email", state="retrying", updated_ago=5)  # waiting its turn
    delivery(session_factory, placed.event_id, "inventory", state="running", updated_ago=30,
             lease_in=20)  # a live worker holds it
    delivery(session_factory, placed.event_id, "analytics", state="succeeded", updated_ago=30)
    assert overdue(session_factory) == set()

    delivery(session_factory, placed.event_id, "email", state="retrying", updated_ago=30)
    delivery(session_factory, placed.event_id, "inventory", state="running", updated_ago=30,
             lease_in=-1)  # its worker is gone
    assert overdue(session_factory) == {("email", "retrying"), ("inventory", "running")}


def test_republished_pairs_are_left_alone_for_another_deadline(session_factory):
    placed = place(session_factory)
    published(session_factory, placed.event_id, 20)
    found = find_overdue(session_factory, after_seconds=AFTER, horizon_seconds=3600, limit=100)

    mark_republished(session_factory, found, after_seconds=AFTER)

    assert {c: d.state for c, d in deliveries_of(session_factory, placed.event_id).items()} == {
        "email": "pending", "inventory": "pending", "analytics": "pending"}
    assert overdue(session_factory) == set()
    with session_factory.begin() as session:  # another deadline passes: lost again, sent again
        session.execute(update(Delivery).values(updated_at=utcnow() - timedelta(seconds=30)))
    assert overdue(session_factory) == {("email", "pending"), ("inventory", "pending"),
                                        ("analytics", "pending")}


@pytest.mark.both_brokers
def test_reconcile_once_republishes_a_lost_event_and_it_is_delivered(celery_app, runtime, worker):
    placed = place(runtime.session_factory)  # never sent to Redis: as if Redis lost it
    published(runtime.session_factory, placed.event_id, 20)
    short = replace(runtime, settings=replace(runtime.settings, reconcile_after_seconds=AFTER))

    assert reconcile_once(celery_app, short) == 3
    final = wait_until(lambda: all_final(runtime.session_factory, placed.event_id))
    assert set(final.values()) == {"succeeded"}
    assert reconcile_once(celery_app, short) == 0
