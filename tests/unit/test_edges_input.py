"""Names refuse control characters (422 naming the field); a payload the consumers cannot read is
that delivery's permanent failure with a reason, before any effect."""

from __future__ import annotations

import pytest

from orders.consumers.analytics import record_revenue
from orders.consumers.inventory import reserve_stock
from orders.customers import sign_up_customer
from orders.errors import InvalidOrder, InvalidSignup, PermanentError
from orders.schemas import parse_place_order

ORDER = {"customer_email": "ada@example.com", "card_token": "tok_ok",
         "lines": [{"sku": "mug", "quantity": 1}],
         "shipping_address": {"line1": "1 Rue Lepic", "city": "Paris", "postcode": "75018", "country": "FR"}}
# (A lone surrogate, U+D800, pydantic refuses already: "not a valid string".)
BAD = ["\r", "\n", "\x00", "\x1b", "\u2028", "\u2029", "\u202e", "\ufeff", "\x85"]


@pytest.mark.parametrize("char", BAD, ids=[f"U+{ord(c):04X}" for c in BAD])
def test_a_name_with_a_control_character_is_refused_naming_the_field(char):
    with pytest.raises(InvalidOrder) as raised:
        parse_place_order({**ORDER, "customer_name": f"Bob{char}Bcc: evil@example.com"})
    [detail] = raised.value.details
    assert detail["field"] == "customer_name"
    assert f"U+{ord(char):04X}" in detail["message"] and "control characters" in detail["message"]


@pytest.mark.parametrize("name", ["Ada Lovelace", "José Núñez", "Zoë O'Neil-Smith", "李小龍",
                                  "\u0645\u06cc\u200c\u0631\u0627"])  # ZWNJ: part of Persian spelling
def test_ordinary_names_are_accepted(name):
    assert parse_place_order({**ORDER, "customer_name": name}).customer_name == name


def test_a_signup_name_with_a_line_break_is_refused_before_anything_is_written():
    with pytest.raises(InvalidSignup) as raised:
        sign_up_customer(session_factory=None, data={"email": "ada@example.com", "name": "Ada\nBcc: x"})  # type: ignore[arg-type]
    assert [d["field"] for d in raised.value.details] == ["name"]


@pytest.mark.parametrize(("payload", "reason"), [
    ({"lines": [{"sku": "mug", "quantity": 1}]}, "the order.created payload lacks 'order_id'"),
    ({"order_id": "o-1"}, "lacks 'lines'"),
    ({"order_id": "o-1", "lines": [{"sku": "mug"}]}, "lacks 'quantity'"),
    ({"order_id": "o-1", "lines": [{"sku": "mug", "quantity": "two"}]}, "cannot be read"),
    ({"order_id": "o-1", "lines": [{"sku": "mug", "quantity": -3}]}, "quantity must be a positive integer"),
    ({"order_id": "o-1", "lines": "mug"}, "cannot be read"),
])
def test_inventory_refuses_a_payload_it_cannot_read_before_taking_any_stock(payload, reason):
    with pytest.raises(PermanentError, match=reason):
        reserve_stock(None, "ev-1", payload)  # type: ignore[arg-type]  (no statement may run)


@pytest.mark.parametrize(("payload", "reason"), [
    ({"order_id": "o-1", "currency": "EUR"}, "lacks 'total_cents'"),
    ({"order_id": "o-1", "total_cents": "much", "currency": "EUR"}, "cannot be read"),
    (None, "cannot be read"),
])
def test_analytics_refuses_a_payload_it_cannot_read(payload, reason):
    with pytest.raises(PermanentError, match=reason):
        record_revenue(None, "ev-1", payload)  # type: ignore[arg-type]
