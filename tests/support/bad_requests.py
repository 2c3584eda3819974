"""Bad requests every front door (the API, the Flask and Django examples) must answer alike:
(name, raw body, content type)."""

from __future__ import annotations

import json

from tests.support.orders import order_input

BAD_ORDER_REQUESTS = [
    ("broken JSON", b'{"customer_email": ', "application/json"),
    ("JSON null", b"null", "application/json"),
    ("not JSON", b"customer_email=ada@example.com", "application/x-www-form-urlencoded"),
    ("a list", b"[1, 2]", "application/json"),
    ("missing fields", b"{}", "application/json"),
    ("name with a line break",
     json.dumps(order_input(customer_name="Bob\r\nBcc: evil@example.com")).encode(), "application/json"),
    ("name with U+2028", json.dumps(order_input(customer_name="Bob\u2028X")).encode(), "application/json"),
    ("unknown product", json.dumps(order_input(lines=[{"sku": "nope", "quantity": 1}])).encode(),
     "application/json"),
    ("declined card", json.dumps(order_input(card_token="tok_declined")).encode(), "application/json"),
]
