"""The use case: charge by direct call, then store the order and its event in one transaction."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Executable, Table, bindparam, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from orders.db import SessionFactory
from orders.errors import InvalidOrder, UnknownProduct
from orders.events import order_created_payload
from orders.models import Order, OrderLine, OutboxEvent, Product, new_id, utcnow
from orders.outbox import notify_relay, relay_notification
from orders.payments import PaymentGateway
from orders.schemas import PlaceOrderIn, parse_place_order
from orders.subscriptions import ORDER_CREATED

log = logging.getLogger(__name__)

AfterCommit = Callable[[OutboxEvent], None]


@dataclass(frozen=True)
class PlacedLine:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class PlacedOrder:
    """What was committed, so a caller can answer without reading the order back."""

    order_id: str
    event_id: str
    total_cents: int
    currency: str
    payment_id: str
    customer_email: str
    customer_name: str
    created_at: datetime
    lines: tuple[PlacedLine, ...]


def place_order(
    *,
    session_factory: SessionFactory,
    gateway: PaymentGateway,
    data: object,
    currency: str = "EUR",
    after_commit: AfterCommit | None = None,
) -> PlacedOrder:
    """Place an order or raise an OrderflowError; on any error nothing is written.

    `after_commit` receives the committed event (the fast publishing path); it
    must not block, and whatever it does, the relay publishes what it missed.
    """
    command = parse_place_order(data)
    prices = _load_prices(session_factory, command)
    total = sum(prices[line.sku].price_cents * line.quantity for line in command.lines)
    order_id = new_id()
    charge = gateway.charge(
        amount_cents=total, currency=currency, card_token=command.card_token,
        idempotency_key=order_id,
    )
    order = Order(
        id=order_id,
        customer_email=command.customer_email,
        customer_name=command.customer_name,
        total_cents=total,
        currency=currency,
        payment_id=charge.payment_id,
        created_at=utcnow(),
        lines=[
            OrderLine(sku=ln.sku, quantity=ln.quantity, unit_price_cents=prices[ln.sku].price_cents)
            for ln in command.lines
        ],
    )
    try:
        event = _store(session_factory, order, prices)
    except Exception:
        # Paid but not stored: give the money back, then let the caller see the error.
        log.exception("storing order %s failed after payment; refunding", order_id)
        gateway.refund(payment_id=charge.payment_id)
        raise
    if after_commit is not None:
        _run_after_commit(after_commit, event)
    return _placed(order, event.id)


def _load_prices(session_factory: SessionFactory, command: PlaceOrderIn) -> dict[str, Product]:
    skus = [line.sku for line in command.lines]
    if len(set(skus)) != len(skus):
        raise InvalidOrder(
            "each product may appear once per order",
            details=[{"field": "lines", "message": "duplicate sku"}],
        )
    with session_factory() as session:
        # One read needs no transaction: autocommit spares the BEGIN and ROLLBACK round trips.
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        products = session.scalars(select(Product).where(Product.sku.in_(skus))).all()
    found = {p.sku: p for p in products}
    missing = [sku for sku in skus if sku not in found]
    if missing:
        raise UnknownProduct(
            f"unknown product: {', '.join(missing)}",
            details=[{"field": "lines.sku", "message": f"unknown product {sku!r}"} for sku in missing],
        )
    return found


def _store(session_factory: SessionFactory, order: Order, prices: dict[str, Product]) -> OutboxEvent:
    """Insert the order, its lines and its event with Core statements: the ORM's unit of
    work (flush ordering, identity map, a key fetched back per line) cost more CPU than
    the rest of the use case and buys nothing here; the objects stay transient."""
    event_id = new_id()
    event = OutboxEvent(
        id=event_id,
        event_type=ORDER_CREATED,
        aggregate_id=order.id,
        payload=order_created_payload(event_id, order, prices),
        created_at=order.created_at,
    )
    # One transaction: the order exists if and only if its event does.
    with session_factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One statement is one transaction: run it in autocommit mode, so storing the
            # order is one round trip instead of six (BEGIN, 3 INSERTs, NOTIFY, COMMIT).
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            session.execute(_store_statement(), _store_params(order, event))
            return event
        orders, lines, outbox = _tables()
        with session.begin():
            session.execute(insert(orders), _order_row(order))
            session.execute(insert(lines), _line_rows(order))
            session.execute(insert(outbox), _event_row(event))
            notify_relay(session)
    return event


def _tables() -> tuple[Table, Table, Table]:
    return cast(Table, Order.__table__), cast(Table, OrderLine.__table__), cast(Table, OutboxEvent.__table__)


# The columns place_order writes; every other column takes its default.
_ORDER_COLUMNS = (
    "id", "customer_email", "customer_name", "total_cents", "currency", "payment_id", "created_at",
)
_LINE_COLUMNS = ("sku", "quantity", "unit_price_cents")
_EVENT_COLUMNS = ("id", "event_type", "aggregate_id", "payload", "created_at")


def _order_row(order: Order) -> dict[str, Any]:
    return {key: getattr(order, key) for key in _ORDER_COLUMNS}


def _line_rows(order: Order) -> list[dict[str, Any]]:
    return [
        {"order_id": order.id, **{key: getattr(line, key) for key in _LINE_COLUMNS}} for line in order.lines
    ]


def _event_row(event: OutboxEvent) -> dict[str, Any]:
    return {key: getattr(event, key) for key in _EVENT_COLUMNS}


def _store_params(order: Order, event: OutboxEvent | None) -> dict[str, Any]:
    params = {f"o_{key}": value for key, value in _order_row(order).items()}
    if event is not None:
        params.update({f"e_{key}": value for key, value in _event_row(event).items()})
    params.update({f"l_{key}": [getattr(line, key) for line in order.lines] for key in _LINE_COLUMNS})
    return params


@functools.cache
def _store_statement(with_event: bool = True) -> Executable:
    """PostgreSQL: the three INSERTs as data-modifying CTEs of one `SELECT pg_notify(...)`.

    (`with_event=False`, the order and its lines alone, is the benchmark's "no events"
    baseline: bench/producer_app.py.)

    Every CTE runs to completion whether or not the SELECT reads it, all in the statement's
    one transaction, and the foreign keys are checked at its end, when the order row exists.
    The lines come as one array per column (`unnest ... WITH ORDINALITY`, inserted in their
    order): one statement, compiled once, for any number of lines.
    """
    orders, lines, outbox = _tables()
    given = func.unnest(*(bindparam(f"l_{key}", type_=ARRAY(lines.c[key].type)) for key in _LINE_COLUMNS)
                        ).table_valued(*_LINE_COLUMNS, with_ordinality="n").render_derived()
    ctes = [
        insert(orders).values({key: bindparam(f"o_{key}") for key in _ORDER_COLUMNS}).cte("new_order"),
        insert(lines).from_select(
            ["order_id", *_LINE_COLUMNS],
            select(bindparam("o_id"), *(given.c[key] for key in _LINE_COLUMNS)).order_by(given.c.n),
        ).cte("new_lines"),
    ]
    if not with_event:
        return select(literal(1)).add_cte(*ctes)
    return select(relay_notification()).add_cte(
        *ctes, insert(outbox).values({key: bindparam(f"e_{key}") for key in _EVENT_COLUMNS}).cte("new_event"),
    )


def _placed(order: Order, event_id: str) -> PlacedOrder:
    return PlacedOrder(
        order.id, event_id, order.total_cents, order.currency, order.payment_id,
        order.customer_email, order.customer_name, order.created_at,
        tuple(PlacedLine(ln.sku, ln.quantity, ln.unit_price_cents) for ln in order.lines),
    )


def _run_after_commit(after_commit: AfterCommit, event: OutboxEvent) -> None:
    try:
        after_commit(event)
    except Exception:  # the order is committed; the relay publishes the event anyway
        log.exception("after-commit publish of event %s failed; the relay will take it", event.id)
