"""Inventory: take stock for each line, atomically; a line that cannot be filled is backordered.

Then the order's status moves to `reserved` or `backordered` and the event saying so
(order.reserved / order.backordered) is written to the orders outbox, all in the
transaction that records this delivery: the stock, the status and the event commit
together or not at all (orders/order_events.py).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, update
from sqlalchemy.orm import Session

from orders.consumers.payload import positive_int, reading_payload
from orders.models import BACKORDERED, PLACED, RESERVED, OrderLine, Product
from orders.order_events import ORDER_BACKORDERED, ORDER_RESERVED, move_status


def reserve_stock(session: Session, event_id: str, payload: dict[str, Any]) -> dict[str, str]:
    """Decrement stock per line inside the caller's transaction; returns sku -> outcome.

    `stock = stock - q WHERE stock >= q` is a single atomic statement, so
    concurrent orders can never drive stock negative. Lines are taken in sku
    order so two orders for the same products cannot deadlock on PostgreSQL.
    """
    with reading_payload("order.created"):
        # Read whole before the first statement: a bad line is the message's permanent problem
        # and must not leave half of the stock taken.  A quantity below 1 would *add* stock.
        order_id = str(payload["order_id"])
        wanted = sorted((str(ln["sku"]), positive_int(ln["quantity"], "quantity")) for ln in payload["lines"])
    outcomes: dict[str, str] = {}
    for sku, quantity in wanted:
        result: CursorResult = session.execute(  # type: ignore[assignment]
            _TAKE_STOCK, {"wanted_sku": sku, "quantity": quantity})
        outcomes[sku] = RESERVED if result.rowcount == 1 else BACKORDERED
        session.execute(_SET_FULFILMENT, {"wanted_order": order_id, "wanted_sku": sku,
                                          "outcome": outcomes[sku]})
    every_line = all(outcome == RESERVED for outcome in outcomes.values())
    move_status(session, order_id=order_id, from_statuses=[PLACED],
                to=RESERVED if every_line else BACKORDERED,
                event_type=ORDER_RESERVED if every_line else ORDER_BACKORDERED,
                needs_address=every_line,  # order.reserved books a parcel: it needs somewhere to go
                lines=[{"sku": sku, "quantity": quantity, "fulfilment": outcomes[sku]}
                       for sku, quantity in wanted])
    return outcomes


# Core UPDATEs on the tables, built once: the ORM-enabled form spent more CPU on bookkeeping
# for objects this session never loaded than on the statement, and building a statement
# per line cost more than running it.
_products, _lines = cast(Table, Product.__table__), cast(Table, OrderLine.__table__)
_TAKE_STOCK = (
    update(_products)
    .where(_products.c.sku == bindparam("wanted_sku"), _products.c.stock >= bindparam("quantity"))
    .values(stock=_products.c.stock - bindparam("quantity"))
)
_SET_FULFILMENT = (
    update(_lines)
    .where(_lines.c.order_id == bindparam("wanted_order"), _lines.c.sku == bindparam("wanted_sku"))
    .values(fulfilment=bindparam("outcome"))
)
