"""The confirmation mail as a receiver parses it, whatever the customer's name or address."""

from __future__ import annotations

import email
from email import policy

import pytest

from orders.consumers.email import confirmation_message

PAYLOAD = {"order_id": "o-1", "total_cents": 4900, "currency": "EUR",
           "lines": [{"sku": "mug", "name": "Enamel mug", "quantity": 2}]}


@pytest.mark.parametrize(("name", "address"), [
    ("Ada Lovelace", "ada@example.com"),
    ("José Núñez", "jose@example.com"),  # non-ASCII body
    ("Zoë", "zoë@bücher.example"),  # non-ASCII address: the header needs encoding
])
def test_confirmation_parses_back_with_its_headers_and_body(name, address):
    message = confirmation_message(mail_from="orders@orderflow.example", event_id="ev-1",
                                   payload={**PAYLOAD, "customer_name": name, "customer_email": address})

    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)

    assert parsed["Subject"] == "Your order o-1 is confirmed"
    assert parsed["Message-ID"] == "<ev-1.confirmation@orderflow>"
    assert parsed["X-Orderflow-Event"] == "ev-1"
    assert address in str(parsed["To"])
    body = parsed.get_content()
    assert f"Hello {name}," in body and "2 x Enamel mug (mug)" in body and "Total: 49.00 EUR" in body
