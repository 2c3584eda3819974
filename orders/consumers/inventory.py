"""Inventory: take stock for each line, atomically; a line that cannot be filled is backordered."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, Table, update
from sqlalchemy.orm import Session

from orders.models import OrderLine, Product

RESERVED, BACKORDERED = "reserved", "backordered"


def reserve_stock(session: Session, payload: dict[str, Any]) -> dict[str, str]:
    """Decrement stock per line inside the caller's transaction; returns sku -> outcome.

    `stock = stock - q WHERE stock >= q` is a single atomic statement, so
    concurrent orders can never drive stock negative. Lines are taken in sku
    order so two orders for the same products cannot deadlock on PostgreSQL.
    """
    # Core UPDATEs on the tables: the ORM-enabled form spends more CPU on bookkeeping
    # for objects this session never loaded than on the statement.
    products, lines = cast(Table, Product.__table__), cast(Table, OrderLine.__table__)
    outcomes: dict[str, str] = {}
    for line in sorted(payload["lines"], key=lambda ln: ln["sku"]):
        sku, quantity = line["sku"], int(line["quantity"])
        result: CursorResult = session.execute(  # type: ignore[assignment]
            update(products)
            .where(products.c.sku == sku, products.c.stock >= quantity)
            .values(stock=products.c.stock - quantity)
        )
        taken = result.rowcount
        outcomes[sku] = RESERVED if taken == 1 else BACKORDERED
        session.execute(
            update(lines)
            .where(lines.c.order_id == payload["order_id"], lines.c.sku == sku)
            .values(fulfilment=outcomes[sku])
        )
    return outcomes
