"""The JSON API: thin views that call the use cases."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from orders.errors import InvalidOrder
from orders.place_order import place_order
from orders.queries import get_order, list_products

blueprint = Blueprint("api", __name__)


def services():  # type: ignore[no-untyped-def]
    return current_app.extensions["orderflow"]


def json_body() -> Any:
    """The parsed JSON body, or a 400/415 JSON error naming the problem."""
    from werkzeug.exceptions import BadRequest, UnsupportedMediaType

    if not request.is_json:
        raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # the parser recurses per level: 64 KiB of "[[[[..." exhausts the stack
        raise BadRequest("the body is not valid JSON: nested too deeply") from None
    if data is None:
        raise BadRequest("the body is not valid JSON")
    return data


@blueprint.post("/orders")
def create_order():  # type: ignore[no-untyped-def]
    data = json_body()
    if not isinstance(data, dict):
        raise InvalidOrder("the body must be a JSON object",
                           details=[{"field": "body", "message": "expected an object"}])
    svc = services()
    placed = place_order(
        session_factory=svc.session_factory, gateway=svc.gateway, data=data,
        after_commit=svc.after_commit,
    )
    order = get_order(svc.session_factory, placed.order_id)
    return jsonify(order=order, event_id=placed.event_id), 201, {"Location": f"/orders/{placed.order_id}"}


@blueprint.get("/orders/<order_id>")
def show_order(order_id: str):  # type: ignore[no-untyped-def]
    return jsonify(order=get_order(services().session_factory, order_id))


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
