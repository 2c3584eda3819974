"""The API's OpenAPI 3 description, served at /openapi.json (written by hand, kept beside the routes).

It states what the API accepts (the same limits as `orders/schemas.py`) and
every error it answers; the hostile-input tests generate requests from it.
"""

from __future__ import annotations

from typing import Any

from orders.schemas import MAX_LINES, MAX_QUANTITY


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


ORDER_LINE_IN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sku", "quantity"],
    "properties": {
        "sku": {"type": "string", "minLength": 1, "maxLength": 64},
        "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
    },
}

SHIPPING_ADDRESS_IN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["line1", "city", "postcode", "country"],
    "properties": {
        "line1": {"type": "string", "minLength": 1, "maxLength": 200},
        "city": {"type": "string", "minLength": 1, "maxLength": 200},
        "postcode": {"type": "string", "minLength": 2, "maxLength": 16,
                     "pattern": "^[A-Za-z0-9][A-Za-z0-9 -]*[A-Za-z0-9]$",
                     "description": "00000: the carrier rejects it (the order is cancelled and refunded); "
                                    "99999: the carrier is unavailable (the booking is retried)"},
        "country": {"type": "string", "pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2"},
    },
}

PLACE_ORDER_IN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["customer_email", "card_token", "lines", "shipping_address"],
    "properties": {
        "customer_email": {"type": "string", "format": "email", "maxLength": 320},
        "customer_name": {"type": "string", "maxLength": 200},
        "card_token": {"type": "string", "minLength": 1, "maxLength": 64,
                       "description": "tok_visa succeeds, tok_declined is declined, tok_timeout times out"},
        "lines": {"type": "array", "minItems": 1, "maxItems": MAX_LINES, "items": ORDER_LINE_IN},
        "shipping_address": SHIPPING_ADDRESS_IN,
    },
}

SIGN_UP_IN = {
    "type": "object",
    "additionalProperties": False,
    "required": ["email"],
    "properties": {
        "email": {"type": "string", "format": "email", "maxLength": 320},
        "name": {"type": "string", "maxLength": 200},
    },
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
    }},
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "orderflow", "version": "0.1.0",
             "description": "Place orders; follow each consumer's delivery of the order.created event."},
    "paths": {
        "/orders": {"post": {
            "operationId": "placeOrder",
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": PLACE_ORDER_IN}}},
            "responses": {
                "201": _json({"type": "object", "required": ["order", "event_id"]}, "order placed"),
                "400": _error("malformed JSON"),
                "402": _error("payment declined; nothing written"),
                "413": _error("body over 64 KiB"),
                "415": _error("not JSON"),
                "422": _error("invalid fields (details names each) or unknown product"),
                "503": _error("database or payment gateway unavailable; nothing written"),
            },
        }},
        "/orders/{order_id}": {"get": {
            "operationId": "showOrder",
            "parameters": [{"name": "order_id", "in": "path", "required": True,
                            "schema": {"type": "string"}}],
            "responses": {
                "200": _json({"type": "object", "required": ["order"]},
                             "the order, its lines and one delivery status per consumer"),
                "404": _error("no such order"),
                "503": _error("database unavailable"),
            },
        }},
        "/customers": {"post": {
            "operationId": "signUpCustomer",
            "requestBody": {"required": True, "content": {"application/json": {"schema": SIGN_UP_IN}}},
            "responses": {
                "201": _json({"type": "object", "required": ["customer", "event_id"]}, "signed up"),
                "400": _error("malformed JSON"),
                "409": _error("email already signed up"),
                "413": _error("body over 64 KiB"),
                "415": _error("not JSON"),
                "422": _error("invalid fields"),
                "503": _error("database unavailable"),
            },
        }},
        "/products": {"get": {
            "operationId": "listProducts",
            "responses": {"200": _json({"type": "object", "required": ["products"]}, "the catalogue"),
                          "503": _error("database unavailable")},
        }},
        "/healthz": {"get": {"operationId": "health",
                             "responses": {"200": _json({"type": "object"}, "the web process is up")}}},
    },
    "components": {"schemas": {"Error": ERROR}},
}
