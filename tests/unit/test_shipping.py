"""The simulated carrier's test postcodes and idempotent bookings; the customer's status mails."""

from __future__ import annotations

import pytest

from orders.consumers.status_mail import status_message
from orders.errors import PermanentError
from shipping.carrier import CarrierRejected, CarrierUnavailable, SimulatedCarrier


def test_a_booking_asked_again_is_the_same_parcel(tmp_path):
    carrier = SimulatedCarrier(str(tmp_path / "carrier.sqlite3"))
    first = carrier.book(booking_id="bk-1", postcode="N8 8AA", country="GB", parcels=1)
    again = SimulatedCarrier(str(tmp_path / "carrier.sqlite3")).book(
        booking_id="bk-1", postcode="N8 8AA", country="GB", parcels=1)  # another process, say
    assert first == again and first.tracking_number.startswith("TRK")
    assert carrier.bookings() == {"bk-1": 2}


def test_postcode_00000_is_refused_for_good_and_books_nothing():
    carrier = SimulatedCarrier()
    for _ in range(2):
        with pytest.raises(CarrierRejected, match="00000"):
            carrier.book(booking_id="bk-2", postcode="00000", country="FR", parcels=1)
    assert carrier.bookings() == {}


def test_postcode_99999_is_unavailable_for_the_first_attempts_then_books():
    carrier = SimulatedCarrier(unavailable_attempts=2)
    for _attempt in (1, 2):  # the same words each time: one dead-letter group per outage
        with pytest.raises(CarrierUnavailable, match="^carrier unavailable for booking bk-3, try later$"):
            carrier.book(booking_id="bk-3", postcode="99999", country="DE", parcels=1)
    assert carrier.book(booking_id="bk-3", postcode="99999", country="DE", parcels=1).booking_id == "bk-3"


PAYLOAD = {"order_id": "o-1", "customer_email": "ada@example.com", "customer_name": "Ada"}


@pytest.mark.parametrize(("event_type", "fields", "subject", "says"), [
    ("order.backordered", {"lines": [{"sku": "mug", "quantity": 1, "fulfilment": "reserved"},
                                     {"sku": "poster", "quantity": 30, "fulfilment": "backordered"}]},
     "Some items of your order o-1 are delayed", "30 x poster"),
    ("order.shipped", {"carrier": "Simulated Parcel Co.", "tracking_number": "TRK1"},
     "Your order o-1 has shipped", "tracking number TRK1"),
    ("order.cancelled", {"reason": "no delivery to 00000", "refund_id": "re_1"},
     "Your order o-1 is cancelled", "refund re_1"),
])
def test_each_status_has_its_mail(event_type, fields, subject, says):
    message = status_message(mail_from="shop@example.com", event_id="e-1",
                             payload={**PAYLOAD, "event_type": event_type, **fields})
    assert message["Subject"] == subject
    body = message.get_payload(decode=True).decode()
    assert says in body and ("1 x mug" not in body)
    assert message["Message-ID"] == f"<e-1.{event_type.replace('.', '-')}@orderflow>"


def test_an_unknown_event_type_is_the_messages_permanent_failure():
    with pytest.raises(PermanentError, match="no customer mail"):
        status_message(mail_from="shop@example.com", event_id="e-1", payload={**PAYLOAD, "event_type": "x"})
