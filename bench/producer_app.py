"""`gunicorn 'bench.producer_app:create_app()'`: orderflow's API plus two comparison routes.

- `POST /orders`                 orderflow itself, its production default (order + outbox event
                                 + NOTIFY; on PostgreSQL the relay publishes, no fast path)
- `POST /bench/orders/no-events` the same validation, payment and insert, no event at all
- `POST /bench/orders/direct`    the direct-call design: the order, then inventory and
                                 analytics written and the confirmation e-mail sent inside
                                 the request (no outbox, no queue)

All three answer like `POST /orders` (201, the order read back), so the only
difference in latency is what happens to the side effects.
"""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify

from orders.consumers import analytics, email, inventory
from orders.events import order_created_payload
from orders.models import Order, OrderLine, new_id
from orders.place_order import _load_prices
from orders.queries import get_order
from orders.schemas import parse_place_order
from web import create_app as create_orderflow_app
from web.routes import json_body, services

blueprint = Blueprint("bench", __name__)


def _insert_order(*, direct: bool) -> str:
    svc = services()
    command = parse_place_order(json_body())
    prices = _load_prices(svc.session_factory, command)
    order_id = new_id()
    total = sum(prices[ln.sku].price_cents * ln.quantity for ln in command.lines)
    charge = svc.gateway.charge(amount_cents=total, currency="EUR", card_token=command.card_token,
                                idempotency_key=order_id)
    order = Order(id=order_id, customer_email=command.customer_email, customer_name=command.customer_name,
                  total_cents=total, currency="EUR", payment_id=charge.payment_id,
                  lines=[OrderLine(sku=ln.sku, quantity=ln.quantity,
                                   unit_price_cents=prices[ln.sku].price_cents) for ln in command.lines])
    with svc.session_factory.begin() as session:
        session.add(order)
        if direct:
            session.flush()
            payload = order_created_payload(new_id(), order, prices)
            inventory.reserve_stock(session, payload)
            analytics.record_revenue(session, payload["event_id"], payload)
    if direct:
        message = email.confirmation_message(mail_from=svc.settings.mail_from, event_id=payload["event_id"],
                                             payload=payload)
        email.send_message(smtp_url=svc.settings.smtp_url, message=message)
    return order_id


@blueprint.post("/bench/orders/no-events")
def no_events():  # type: ignore[no-untyped-def]
    order_id = _insert_order(direct=False)
    return jsonify(order=get_order(services().session_factory, order_id)), 201


@blueprint.post("/bench/orders/direct")
def direct():  # type: ignore[no-untyped-def]
    order_id = _insert_order(direct=True)
    return jsonify(order=get_order(services().session_factory, order_id)), 201


def create_app() -> Flask:
    app = create_orderflow_app()
    app.register_blueprint(blueprint)
    return app
