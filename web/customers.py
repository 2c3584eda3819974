"""Customer signup: `POST /customers`. The welcome email is an in-process subscriber."""

from __future__ import annotations

from flask import Blueprint, jsonify

from orders.customers import sign_up_customer
from web.routes import json_body, services

blueprint = Blueprint("customers", __name__)


@blueprint.post("/customers")
def sign_up():  # type: ignore[no-untyped-def]
    svc = services()
    signed_up = sign_up_customer(session_factory=svc.session_factory, data=json_body(),
                                 after_commit=svc.after_commit)
    return jsonify(customer={"id": signed_up.customer_id, "email": signed_up.email},
                   event_id=signed_up.event_id), 201
