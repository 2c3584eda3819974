"""Booking a reserved order's shipment: the carrier by direct call, then the shipment and its
event in the transaction that records the delivery.

The booking id is derived from the order.reserved event (`bk-<event id>`), so
every retry, redelivery or replay of that message asks the carrier for the same
booking, and the carrier (idempotent by booking id) answers with the same parcel.
A worker killed after the carrier booked and before this transaction committed
runs again and gets that parcel back: one parcel, one shipment row, one event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from config.settings import Settings
from outbox.clock import utcnow
from outbox.errors import PermanentError
from outbox.store import add_event
from outbox.versions import VERSION_KEY
from shipping.carrier import Carrier, CarrierRejected, SimulatedCarrier
from shipping.models import BOOKED, REJECTED, Shipment

SHIPMENT_BOOKED = "shipment.booked"
SHIPMENT_REJECTED = "shipment.rejected"
SHIPMENT_VERSION = 1

_shipments = cast(Table, Shipment.__table__)


@contextmanager
def booker(settings: Settings) -> Iterator[Callable[[Session, str, dict[str, Any]], str]]:
    """The shipping consumer's handler for one message, with the configured carrier."""
    carrier = carrier_for(settings)

    def handle(session: Session, event_id: str, payload: dict[str, Any]) -> str:
        return book_shipment(session, carrier=carrier, event_id=event_id, payload=payload)

    yield handle


_carriers: dict[tuple[str, int, float], SimulatedCarrier] = {}
_carriers_lock = threading.Lock()


def carrier_for(settings: Settings) -> SimulatedCarrier:
    """One carrier client per configuration, kept for the process's life (an in-memory one
    must remember its bookings from one message to the next)."""
    key = (settings.carrier_ledger, settings.carrier_unavailable_attempts, settings.carrier_latency_seconds)
    with _carriers_lock:
        if key not in _carriers:
            _carriers[key] = SimulatedCarrier(key[0], unavailable_attempts=key[1], latency_seconds=key[2])
        return _carriers[key]


def booking_id_for(event_id: str) -> str:
    return f"bk-{event_id}"


def book_shipment(session: Session, *, carrier: Carrier, event_id: str, payload: dict[str, Any]) -> str:
    """Book, store the shipment, write shipment.booked / shipment.rejected; returns the status.

    CarrierUnavailable (transient) propagates: the delivery is retried with backoff, and
    nothing of this attempt is committed.
    """
    try:
        order_id = str(payload["order_id"])
        address = payload["shipping_address"]
        postcode, country = str(address["postcode"]), str(address["country"])
        parcels = len(payload["lines"])
    except (KeyError, TypeError) as exc:
        raise PermanentError(f"the order.reserved payload cannot be read: {exc!r}") from exc
    booking_id = booking_id_for(event_id)
    row: dict[str, Any] = {"booking_id": booking_id, "order_id": order_id, "event_id": event_id,
                           "postcode": postcode, "country": country, "created_at": utcnow()}
    try:
        booking = carrier.book(booking_id=booking_id, postcode=postcode, country=country, parcels=parcels)
        row.update(status=BOOKED, carrier=booking.carrier, tracking_number=booking.tracking_number)
    except CarrierRejected as refused:
        row.update(status=REJECTED, carrier="", reason=str(refused)[:200])
    session.execute(insert(_shipments).values(**row))
    follow_up = SHIPMENT_BOOKED if row["status"] == BOOKED else SHIPMENT_REJECTED
    add_event(session, event_type=follow_up, aggregate_id=order_id, payload={
        VERSION_KEY: SHIPMENT_VERSION, "event_type": follow_up, "order_id": order_id,
        "booking_id": booking_id, "status": row["status"], "carrier": row["carrier"],
        "tracking_number": row.get("tracking_number"), "reason": row.get("reason"),
        "occurred_at": utcnow().isoformat(),
    })
    return str(row["status"])
