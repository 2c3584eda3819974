"""Storing an order, its lines and its event: one transaction, as few round trips as possible.

Core statements, not the ORM's unit of work: flush ordering, the identity map
and a key fetched back per line cost more CPU than the rest of placing an
order and buy nothing here (the objects stay transient). On PostgreSQL the
whole write is ONE autocommit statement (`order_statement`); on SQLite three
INSERTs in one transaction. The building blocks are public so the benchmark's
baselines (bench/producer_app.py) store an order exactly the same way.
"""

from __future__ import annotations

import functools
from typing import Any, cast

from sqlalchemy import Executable, Select, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY

from orders.models import Order, OrderLine
from outbox.db import SessionFactory
from outbox.models import OutboxEvent
from outbox.store import notify_relay, relay_notification

# The columns placing an order writes; every other column takes its default.
ORDER_COLUMNS = (
    "id", "customer_email", "customer_name", "total_cents", "currency", "payment_id", "created_at",
    "status", "ship_line1", "ship_city", "ship_postcode", "ship_country",
)
LINE_COLUMNS = ("sku", "quantity", "unit_price_cents")
EVENT_COLUMNS = ("id", "event_type", "aggregate_id", "payload", "created_at", "trace_context")


def store_order(session_factory: SessionFactory, order: Order, event: OutboxEvent) -> None:
    """Insert the order, its lines and its event; the order exists if and only if its event does."""
    with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One statement is one transaction: run it in autocommit mode, so storing the
            # order is one round trip instead of six (BEGIN, 3 INSERTs, NOTIFY, COMMIT).
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            session.execute(order_with_event_statement(), statement_params(order, event))
            return
        orders, lines, outbox = tables()
        with session.begin():
            session.execute(insert(orders), order_row(order))
            session.execute(insert(lines), line_rows(order))
            session.execute(insert(outbox), event_row(event))
            notify_relay(session)


def tables() -> tuple[Table, Table, Table]:
    return cast(Table, Order.__table__), cast(Table, OrderLine.__table__), cast(Table, OutboxEvent.__table__)


def order_row(order: Order) -> dict[str, Any]:
    return {key: getattr(order, key) for key in ORDER_COLUMNS}


def line_rows(order: Order) -> list[dict[str, Any]]:
    return [{"order_id": order.id, **{key: getattr(line, key) for key in LINE_COLUMNS}}
            for line in order.lines]


def event_row(event: OutboxEvent) -> dict[str, Any]:
    return {key: getattr(event, key) for key in EVENT_COLUMNS}


def statement_params(order: Order, event: OutboxEvent | None) -> dict[str, Any]:
    """The parameters of `order_with_event_statement` (or, without `event`, of `order_ctes`)."""
    params = {f"o_{key}": value for key, value in order_row(order).items()}
    if event is not None:
        params.update({f"e_{key}": value for key, value in event_row(event).items()})
    params.update({f"l_{key}": [getattr(line, key) for line in order.lines] for key in LINE_COLUMNS})
    return params


def order_ctes() -> list[Any]:
    """PostgreSQL: the order and its lines as data-modifying CTEs.

    Every CTE runs to completion whether or not the SELECT reads it, all in the statement's
    one transaction, and the foreign keys are checked at its end, when the order row exists.
    The lines come as one array per column (`unnest ... WITH ORDINALITY`, inserted in their
    order): one statement, compiled once, for any number of lines.
    """
    orders, lines, _ = tables()
    given = func.unnest(*(bindparam(f"l_{key}", type_=ARRAY(lines.c[key].type)) for key in LINE_COLUMNS)
                        ).table_valued(*LINE_COLUMNS, with_ordinality="n").render_derived()
    return [
        insert(orders).values({key: bindparam(f"o_{key}") for key in ORDER_COLUMNS}).cte("new_order"),
        insert(lines).from_select(
            ["order_id", *LINE_COLUMNS],
            select(bindparam("o_id"), *(given.c[key] for key in LINE_COLUMNS)).order_by(given.c.n),
        ).cte("new_lines"),
    ]


@functools.cache
def order_with_event_statement() -> Executable:
    """PostgreSQL: the order, its lines and its event in one `SELECT pg_notify(...)`."""
    _, _, outbox = tables()
    event = insert(outbox).values({key: bindparam(f"e_{key}") for key in EVENT_COLUMNS}).cte("new_event")
    statement: Select[Any] = select(relay_notification()).add_cte(*order_ctes(), event)
    return statement
