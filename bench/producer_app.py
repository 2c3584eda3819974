"""`gunicorn 'bench.producer_app:create_app()'`: orderflow's API plus two comparison routes.

- `POST /orders`                 orderflow itself, its production default (order + outbox event
                                 + NOTIFY; on PostgreSQL the relay publishes, no fast path)
- `POST /bench/orders/no-events` the same validation, payment and insert, no event at all
- `POST /bench/orders/direct`    the direct-call design: the order, then inventory and
                                 analytics written and the confirmation e-mail sent inside
                                 the request (no outbox, no queue)

All three store the order the same way and answer like `POST /orders` (201, the
order as written, no read-back), so the only difference in latency is what happens
to the side effects.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify
from sqlalchemy import insert, literal, select

from orders.consumers import analytics, email, inventory
from orders.models import Order
from orders.order_store import line_rows, order_ctes, order_row, statement_params, tables
from orders.payloads import order_created_payload
from orders.place_order import load_prices, new_order, placed_from
from orders.schemas import parse_place_order
from outbox.clock import new_id
from web import create_app as create_orderflow_app
from web.routes import json_body, placed_order_view, services

blueprint = Blueprint("bench", __name__)
# PostgreSQL: the order and its lines as `place_order` writes them, without the event and NOTIFY.
_NO_EVENT_STATEMENT = select(literal(1)).add_cte(*order_ctes())


def _new_order() -> tuple[Order, dict]:
    """Validation, prices and payment exactly as `place_order` does them."""
    svc = services()
    command = parse_place_order(json_body())
    prices = load_prices(svc.session_factory, command)
    order_id = new_id()
    total = sum(prices[ln.sku].price_cents * ln.quantity for ln in command.lines)
    charge = svc.gateway.charge(amount_cents=total, currency="EUR", card_token=command.card_token,
                                idempotency_key=order_id)
    order = new_order(order_id, command, prices, total=total, currency="EUR", payment_id=charge.payment_id)
    return order, prices


def _view(order: Order, fulfilment: dict[str, str] | None = None) -> dict[str, Any]:
    """The answer `POST /orders` gives (from what was written, no read-back), without events."""
    view = placed_order_view(placed_from(order, event_id=""))
    view["events"] = []
    for line in view["lines"]:
        line["fulfilment"] = (fulfilment or {}).get(line["sku"])
    return view


@blueprint.post("/bench/orders/no-events")
def no_events():  # type: ignore[no-untyped-def]
    """The order and its lines stored the way `place_order` stores them (on PostgreSQL one
    autocommit statement), minus the outbox row and the NOTIFY."""
    order, _prices = _new_order()
    with services().session_factory() as session:
        session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        session.execute(_NO_EVENT_STATEMENT, statement_params(order, None))
    return jsonify(order=_view(order)), 201


@blueprint.post("/bench/orders/direct")
def direct():  # type: ignore[no-untyped-def]
    """The direct-call design: order, stock and revenue in one transaction, then the mail,
    all before answering."""
    order, prices = _new_order()
    orders, lines, _ = tables()
    payload = order_created_payload(new_id(), order, prices)
    with services().session_factory.begin() as session:
        session.execute(insert(orders), order_row(order))
        session.execute(insert(lines), line_rows(order))
        fulfilment = inventory.reserve_stock(session, payload["event_id"], payload)
        analytics.record_revenue(session, payload["event_id"], payload)
    settings = services().settings
    message = email.confirmation_message(mail_from=settings.mail_from, event_id=payload["event_id"],
                                         payload=payload)
    email.send_message(smtp_url=settings.smtp_url, message=message)
    return jsonify(order=_view(order, fulfilment)), 201


def create_app() -> Flask:
    app = create_orderflow_app()
    app.register_blueprint(blueprint)
    return app
