"""The JSON API: thin views that call the use cases."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from bootstrap import Services
from orders.place_order import PlacedOrder, place_order
from orders.queries import delivery_status, get_order, list_products
from orders.subscriptions import ORDER_CREATED
from outbox import tracing
from outbox.clock import iso
from outbox.subscriptions import subscribers_of
from web.json_input import order_input, parse_json

blueprint = Blueprint("api", __name__)


def services() -> Services:
    """What bootstrap.build made for this app (web/app.py)."""
    return current_app.extensions["orderflow"]  # type: ignore[no-any-return]


def json_body() -> Any:
    """The parsed JSON body, or a 400/415 JSON error naming the problem (web/json_input.py)."""
    return parse_json(request.get_data(), mimetype=request.mimetype)


@blueprint.post("/orders")
def create_order():  # type: ignore[no-untyped-def]
    data = order_input(request.get_data(), mimetype=request.mimetype)
    svc = services()
    # The order's trace starts here (outbox/tracing.py; nothing when tracing is off): its
    # context is stored with the outbox row, and every publish and delivery attempt joins it.
    with tracing.span("POST /orders", kind="server") as span:
        placed = place_order(
            session_factory=svc.session_factory, gateway=svc.gateway, data=data,
            after_commit=svc.after_commit,
        )
        tracing.annotate(span, order_id=placed.order_id, event_id=placed.event_id)
    # Answered from what was committed, not read back: `GET /orders/<id>` right after shows the same.
    return (jsonify(order=placed_order_view(placed), event_id=placed.event_id), 201,
            {"Location": f"/orders/{placed.order_id}"})


def placed_order_view(placed: PlacedOrder) -> dict[str, Any]:
    """The order as `orders.queries.get_order` shows it at its commit: its event unpublished,
    no delivery record yet, so every consumer `pending`."""
    return {
        "id": placed.order_id,
        "customer_email": placed.customer_email,
        "customer_name": placed.customer_name,
        "total_cents": placed.total_cents,
        "currency": placed.currency,
        "payment_id": placed.payment_id,
        "created_at": iso(placed.created_at),
        "status": placed.status,
        "shipping_address": placed.shipping_address,
        "tracking_number": None,
        "refund": None,
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price_cents": line.unit_price_cents,
             "fulfilment": None}
            for line in placed.lines
        ],
        "events": [{
            "event_id": placed.event_id,
            "type": ORDER_CREATED,
            "published": False,
            "deliveries": {sub.consumer: delivery_status(None) for sub in subscribers_of(ORDER_CREATED)},
        }],
    }


@blueprint.get("/orders/<order_id>")
def show_order(order_id: str):  # type: ignore[no-untyped-def]
    svc = services()
    others = svc.databases.others(svc.session_factory)
    return jsonify(order=get_order(svc.session_factory, order_id, others=others))


@blueprint.get("/products")
def products():  # type: ignore[no-untyped-def]
    return jsonify(products=list_products(services().session_factory))


@blueprint.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    from web.openapi import OPENAPI

    return jsonify(OPENAPI)


@blueprint.get("/healthz")
def health():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")
