"""How `place_order` stores an order on a real database (SQLite and PostgreSQL): every
line in its order, the event with it, and, on PostgreSQL, in one statement that is all or nothing."""

from __future__ import annotations

import contextlib

import psycopg
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

from orders.models import Order, OrderLine
from orders.payments import SimulatedGateway
from orders.place_order import place_order
from outbox.models import OutboxEvent
from outbox.store import RELAY_CHANNEL
from tests.support.orders import order_input

LINES = [{"sku": "tee", "quantity": 1}, {"sku": "poster", "quantity": 4}, {"sku": "mug", "quantity": 2}]

# Runs on PostgreSQL only (instead of the fixture's SQLite and PostgreSQL), rather than
# being collected for SQLite and skipped there.
postgresql_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@contextlib.contextmanager
def statements_of(session_factory):
    engine = session_factory.kw["bind"]
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def count(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_order_lines_and_event_are_stored_together_in_the_given_order(session_factory):
    placed = place_order(session_factory=session_factory, gateway=SimulatedGateway(),
                         data=order_input(lines=LINES))

    with session_factory() as session:
        order = session.get(Order, placed.order_id)
        stored = session.scalars(select(OrderLine).where(OrderLine.order_id == placed.order_id)
                                 .order_by(OrderLine.id)).all()
        outbox = session.get(OutboxEvent, placed.event_id)
    assert [(ln.sku, ln.quantity, ln.unit_price_cents, ln.fulfilment) for ln in stored] == [
        ("tee", 1, 2500, None), ("poster", 4, 1800, None), ("mug", 2, 1200, None)]
    assert order.total_cents == placed.total_cents == 2500 + 4 * 1800 + 2 * 1200
    assert order.payment_id == placed.payment_id
    assert (outbox.event_type, outbox.aggregate_id) == ("order.created", placed.order_id)
    assert (outbox.published_at, outbox.publish_attempts) == (None, 0)
    assert [line["sku"] for line in outbox.payload["lines"]] == ["tee", "poster", "mug"]
    # What place_order returns is what was stored (POST /orders answers from it).
    assert [(ln.sku, ln.quantity, ln.unit_price_cents) for ln in placed.lines] == [
        (ln.sku, ln.quantity, ln.unit_price_cents) for ln in stored]
    assert order.created_at.replace(tzinfo=None) == placed.created_at.replace(tzinfo=None)


@postgresql_only
def test_on_postgresql_an_order_is_two_statements(session_factory):
    """The price read and one store statement (order, lines, event and NOTIFY): no
    BEGIN/COMMIT round trips either, each runs in autocommit mode.
    (SQLite stores in a transaction of three INSERTs.)"""
    with statements_of(session_factory) as seen:
        place_order(session_factory=session_factory, gateway=SimulatedGateway(),
                    data=order_input(lines=LINES))
    assert len(seen) == 2, seen
    assert "FROM products" in seen[0]
    assert all(part in seen[1] for part in ("INSERT INTO orders", "INSERT INTO order_lines",
                                            "INSERT INTO outbox", "pg_notify"))


@postgresql_only
def test_on_postgresql_a_failing_store_writes_nothing_wakes_nobody_and_refunds(session_factory, settings):
    """(SQLite: tests/unit/test_place_order.py.)"""
    # The event's INSERT fails while executing, after the order's and the lines' in the same statement.
    with session_factory.begin() as session:
        session.execute(text("ALTER TABLE outbox ADD CONSTRAINT no_events CHECK (event_type = 'none')"))
    gateway = SimulatedGateway()
    conninfo = make_url(settings.database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {RELAY_CHANNEL}")
        with pytest.raises(Exception, match="no_events"):
            place_order(session_factory=session_factory, gateway=gateway, data=order_input(lines=LINES))
        assert list(listener.notifies(timeout=1.0)) == []
    assert (count(session_factory, Order), count(session_factory, OrderLine),
            count(session_factory, OutboxEvent)) == (0, 0, 0)
    [charge] = gateway.charges.values()
    assert gateway.refunded == {charge.payment_id}


@postgresql_only
def test_on_postgresql_a_stored_order_wakes_the_relay(session_factory, settings):
    """(SQLite has no NOTIFY.)"""
    conninfo = make_url(settings.database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {RELAY_CHANNEL}")
        place_order(session_factory=session_factory, gateway=SimulatedGateway(), data=order_input())
        woken = list(listener.notifies(timeout=5.0, stop_after=1))
    assert [n.channel for n in woken] == [RELAY_CHANNEL]
