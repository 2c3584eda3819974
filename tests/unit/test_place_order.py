from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from orders.errors import InvalidOrder, PaymentDeclined, UnknownProduct
from orders.models import Order
from orders.place_order import place_order
from outbox.models import OutboxEvent
from tests.support.orders import address, order_input


def count(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_success_writes_order_and_its_event_together(session_factory, gateway):
    published = []
    placed = place_order(session_factory=session_factory, gateway=gateway,
                         data=order_input(lines=[{"sku": "mug", "quantity": 3}]),
                         after_commit=published.append)

    assert placed.total_cents == 3 * 1200
    assert gateway.charged == [3600]
    with session_factory() as session:
        order = session.get(Order, placed.order_id)
        event = session.get(OutboxEvent, placed.event_id)
    assert order.payment_id == placed.payment_id
    assert event.event_type == "order.created"
    assert event.payload["order_id"] == placed.order_id
    assert event.payload["lines"] == [
        {"sku": "mug", "name": "Enamel mug", "quantity": 3, "unit_price_cents": 1200}
    ]
    assert [e.id for e in published] == [placed.event_id]


def test_an_order_is_placed_with_its_shipping_address_which_its_event_carries(session_factory, gateway):
    ship_to = address(line1="1 Rue Lepic", city="Paris", postcode="75018", country="FR")
    placed = place_order(session_factory=session_factory, gateway=gateway,
                         data=order_input(shipping_address=ship_to))
    with session_factory() as session:
        order = session.get(Order, placed.order_id)
        event = session.get(OutboxEvent, placed.event_id)
    assert (order.status, order.shipping_address) == ("placed", ship_to)
    assert (placed.status, placed.shipping_address) == ("placed", ship_to)
    assert event.payload["shipping_address"] == ship_to


def test_declined_payment_writes_nothing(session_factory, gateway):
    gateway.decline = True
    published = []
    with pytest.raises(PaymentDeclined):
        place_order(session_factory=session_factory, gateway=gateway, data=order_input(),
                    after_commit=published.append)
    assert count(session_factory, Order) == 0
    assert count(session_factory, OutboxEvent) == 0
    assert published == []


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"customer_email": "not-an-email"}, "customer_email"),
        ({"lines": [{"sku": "mug", "quantity": 0}]}, "lines.0.quantity"),
        ({"lines": [{"sku": "mug", "quantity": "2"}]}, "lines.0.quantity"),
        ({"lines": []}, "lines"),
        ({"card_token": ""}, "card_token"),
        ({"unexpected": 1}, "unexpected"),
        ({"shipping_address": None}, "shipping_address"),
        ({"shipping_address": address(postcode="N8/8AA")}, "shipping_address.postcode"),
        ({"shipping_address": address(country="gb")}, "shipping_address.country"),
        ({"shipping_address": address(city=" ")}, "shipping_address.city"),
        ({"shipping_address": address(line1="1 Road\nBcc: x")}, "shipping_address.line1"),
        ({"shipping_address": {**address(), "floor": "2"}}, "shipping_address.floor"),
    ],
)
def test_invalid_input_names_the_field_and_charges_nothing(session_factory, gateway, overrides, field):
    with pytest.raises(InvalidOrder) as caught:
        place_order(session_factory=session_factory, gateway=gateway, data=order_input(**overrides))
    assert field in [d["field"] for d in caught.value.details], caught.value.details
    assert gateway.charged == []
    assert count(session_factory, Order) == 0


def test_unknown_product_is_refused_before_charging(session_factory, gateway):
    with pytest.raises(UnknownProduct, match="nope"):
        place_order(session_factory=session_factory, gateway=gateway,
                    data=order_input(lines=[{"sku": "nope", "quantity": 1}]))
    assert gateway.charged == []


def test_rolled_back_order_refunds_and_publishes_nothing(session_factory, gateway):
    with session_factory.begin() as session:  # make the event insert fail: the table is gone
        session.connection().exec_driver_sql("DROP TABLE outbox")
    published = []
    with pytest.raises(OperationalError, match="no such table"):
        place_order(session_factory=session_factory, gateway=gateway, data=order_input(),
                    after_commit=published.append)
    assert count(session_factory, Order) == 0  # the order insert was rolled back with it
    assert published == []
    assert gateway.refunded == ["pay_1"]


def test_after_commit_failure_does_not_fail_the_order(session_factory, gateway):
    def broken(_event):
        raise ConnectionError("broker down")

    placed = place_order(session_factory=session_factory, gateway=gateway, data=order_input(),
                         after_commit=broken)
    assert count(session_factory, Order) == 1
    assert placed.order_id
