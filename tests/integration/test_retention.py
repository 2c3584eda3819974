"""Retention on SQLite and PostgreSQL: what `prune` removes, what it keeps, and how it says so."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from cli.main import main
from orders.models import Order
from outbox.clock import utcnow
from outbox.models import DeadLetterAction, Delivery, DeliveryError, OutboxEvent
from outbox.retention import prune
from tasks import pruner
from tasks import runtime as runtime_module
from tests.support.orders import place
from web import create_app

DAY = 86400.0
CONSUMERS = ("email", "inventory", "analytics")


def finished(session_factory, *, days_ago: float, states: dict[str, str] | None = None,
             published: bool = True, audit: bool = False) -> str:
    """A placed order whose event was published, and delivered as `states` say, `days_ago` days ago."""
    placed = place(session_factory)
    at = utcnow() - timedelta(days=days_ago)
    states = {c: "succeeded" for c in CONSUMERS} if states is None else states
    with session_factory.begin() as session:
        session.execute(update(OutboxEvent).where(OutboxEvent.id == placed.event_id).values(
            created_at=at, published_at=at if published else None))
        for consumer, state in states.items():
            delivery = Delivery(event_id=placed.event_id, consumer=consumer, state=state, attempts=2,
                                created_at=at, updated_at=at)
            session.add(delivery)
            session.add(DeliveryError(event_id=placed.event_id, consumer=consumer, attempt=1,
                                      outcome="retrying", error="TransientError: later", created_at=at))
            if audit:
                session.flush()
                session.add(DeadLetterAction(delivery_id=delivery.id, action="discard", actor="ada",
                                             created_at=at))
    return placed.event_id


def count(session_factory, model, event_id: str | None = None) -> int:
    query = select(func.count()).select_from(model)
    if event_id is not None:
        column = OutboxEvent.id if model is OutboxEvent else model.event_id
        query = query.where(column == event_id)
    with session_factory() as session:
        return session.scalar(query) or 0


def test_prune_removes_finished_events_with_their_records_and_keeps_everything_else(session_factory):
    old = finished(session_factory, days_ago=40)
    resolved = finished(session_factory, days_ago=40, audit=True,
                        states={"email": "discarded", "inventory": "succeeded", "analytics": "succeeded"})
    dead = finished(session_factory, days_ago=40,
                    states={"email": "dead", "inventory": "succeeded", "analytics": "succeeded"})
    recent = finished(session_factory, days_ago=10)
    missing = finished(session_factory, days_ago=40, states={"email": "succeeded", "analytics": "succeeded"})
    stuck = finished(session_factory, days_ago=40,
                     states={"email": "retrying", "inventory": "succeeded", "analytics": "succeeded"})
    unpublished = finished(session_factory, days_ago=40, states={}, published=False)

    done = prune(session_factory, retention_seconds=30 * DAY)

    assert (done.events, done.deliveries, done.errors, done.actions) == (2, 6, 6, 3)
    for gone in (old, resolved):
        assert [count(session_factory, m, gone) for m in (OutboxEvent, Delivery, DeliveryError)] == [0, 0, 0]
    # a dead letter keeps its event (payload included) until resolved; the others are not finished
    for kept in (dead, recent, missing, stuck, unpublished):
        assert count(session_factory, OutboxEvent, kept) == 1, kept
    assert count(session_factory, Delivery, dead) == 3
    assert count(session_factory, Order) == 7  # orders are never pruned
    assert prune(session_factory, retention_seconds=30 * DAY).events == 0  # repeatable


def test_prune_goes_in_bounded_batches(session_factory):
    for _ in range(7):
        finished(session_factory, days_ago=40)
    done = prune(session_factory, retention_seconds=30 * DAY, batch_size=3)
    assert (done.events, done.batches) == (7, 3)
    assert count(session_factory, OutboxEvent) == 0 and count(session_factory, Delivery) == 0


def test_the_relay_pruner_uses_the_configured_retention(runtime):
    gone = finished(runtime.session_factory, days_ago=40)
    kept = finished(runtime.session_factory, days_ago=20)
    assert pruner.prune_once(runtime) == 1
    assert count(runtime.session_factory, OutboxEvent, gone) == 0
    assert count(runtime.session_factory, OutboxEvent, kept) == 1


def test_an_order_whose_records_were_pruned_still_answers(settings, session_factory):
    event_id = finished(session_factory, days_ago=40)
    with session_factory() as session:
        order_id = session.scalar(select(Order.id).order_by(Order.created_at.desc()))
    prune(session_factory, retention_seconds=30 * DAY)
    assert count(session_factory, OutboxEvent, event_id) == 0

    api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None}).test_client()
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 200
    [event] = response.json["order"]["events"]
    assert event["type"] == "order.created" and event["pruned"] is True
    assert {c: d["state"] for c, d in event["deliveries"].items()} == {c: "completed" for c in CONSUMERS}


@pytest.fixture
def orderflow(database_url, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPPING_DATABASE_URL", database_url)  # as the integration settings have it

    def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_prune_command_refuses_a_retention_within_the_horizon_and_prunes_otherwise(session_factory,
                                                                                   orderflow):
    finished(session_factory, days_ago=40)
    finished(session_factory, days_ago=1)

    code, out, err = orderflow("prune", "--older-than", "0s")
    assert (code, out) == (1, "")
    assert err.startswith("orderflow prune: refused: --older-than 0s must exceed the retry horizon ")
    assert err.count("\n") == 1 and "RECONCILE_AFTER_SECONDS 600s" in err
    assert count(session_factory, OutboxEvent) == 2

    code, out, err = orderflow("prune", "--older-than", "banana")
    assert code == 1 and "--older-than must be a duration like 30d" in err

    code, out, err = orderflow("prune")
    assert (code, err) == (0, "")
    assert out.startswith("pruned 1 outbox event(s), 3 delivery record(s), 3 attempt error(s)")
    assert count(session_factory, OutboxEvent) == 1

    code, out, err = orderflow("prune")
    assert (code, err) == (0, "")
    assert out.startswith("nothing to prune: no event finished more than 30d ago (")


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_prune_leaves_an_event_someone_holds_and_does_not_wait_for_it(session_factory):
    """Safe while everything runs: a relay or a worker holding an old event's row (a long
    transaction) neither blocks the prune nor loses the row; the next pass takes it."""
    held, free = finished(session_factory, days_ago=40), finished(session_factory, days_ago=40)
    with session_factory.begin() as holder:  # as the relay's claim does: FOR UPDATE, kept open
        holder.execute(select(OutboxEvent).where(OutboxEvent.id == held).with_for_update())
        started = time.monotonic()
        done = prune(session_factory, retention_seconds=30 * DAY)
        assert time.monotonic() - started < 1.0  # SKIP LOCKED: no lock wait at all
        assert done.events == 1 and count(session_factory, OutboxEvent, free) == 0
        assert count(session_factory, OutboxEvent, held) == 1
    assert prune(session_factory, retention_seconds=30 * DAY).events == 1  # released: taken next time
    assert count(session_factory, OutboxEvent, held) == 0


def hop(runtime, *, written_in: str, event_type: str, consumer: str, state: str, days_ago: float) -> str:
    """An event written in `written_in`'s outbox, its consumer's record in the other service's
    database (as order.reserved -> shipping, shipment.booked -> fulfilment), `days_ago` old."""
    at = utcnow() - timedelta(days=days_ago)
    event_id = str(uuid.uuid4())
    with runtime.sessions(written_in).begin() as session:
        session.add(OutboxEvent(id=event_id, event_type=event_type, aggregate_id="o-1", payload={},
                                created_at=at, published_at=at))
    with runtime.sessions_of(consumer).begin() as session:
        session.add(Delivery(event_id=event_id, consumer=consumer, state=state, attempts=1,
                             created_at=at, updated_at=at))
        session.add(DeliveryError(event_id=event_id, consumer=consumer, attempt=1, outcome="retrying",
                                  error="TransientError: later", created_at=at))
    return event_id


def test_events_crossing_databases_are_pruned_once_the_other_side_finished(settings, shipping_url,
                                                                          orderflow):
    runtime = runtime_module.configure(dataclasses.replace(settings, shipping_database_url=shipping_url))
    orders_db, shipping_db = runtime.session_factory, runtime.sessions("shipping")
    assert orders_db is not shipping_db
    # Letters there (their replay needs the event), older than the rest and more of them than a
    # batch holds: they must not stop the pruning of the finished events behind them.
    [dead, *_more_dead] = [hop(runtime, written_in="orders", event_type="order.reserved",
                               consumer="shipping", state="dead", days_ago=45) for _ in range(3)]
    done = hop(runtime, written_in="orders", event_type="order.reserved", consumer="shipping",
               state="succeeded", days_ago=40)
    recent = hop(runtime, written_in="orders", event_type="order.reserved", consumer="shipping",
                 state="succeeded", days_ago=1)
    answered = hop(runtime, written_in="shipping", event_type="shipment.booked", consumer="fulfilment",
                   state="succeeded", days_ago=40)

    in_small_batches = prune(orders_db, retention_seconds=30 * DAY, batch_size=2,
                             records_of=runtime.records_of)
    assert in_small_batches.events == 1
    assert pruner.prune_once(runtime) == 0  # the orders relay's pruner: nothing more
    assert count(orders_db, OutboxEvent, done) == 0
    assert (count(shipping_db, Delivery, done), count(shipping_db, DeliveryError, done)) == (0, 0)
    for kept in (dead, recent):
        assert count(orders_db, OutboxEvent, kept) == 1 and count(shipping_db, Delivery, kept) == 1

    code, out, err = orderflow("prune", env={"SHIPPING_DATABASE_URL": shipping_url})  # shipment.*
    assert (code, err) == (0, "") and out.startswith("pruned 1 outbox event(s), 1 delivery record(s), "
                                                     "1 attempt error(s)")
    assert count(shipping_db, OutboxEvent, answered) == 0 and count(orders_db, Delivery, answered) == 0
    assert count(orders_db, OutboxEvent, dead) == 1 and count(shipping_db, Delivery, dead) == 1
