"""The shipping service's table: one shipment per reserved order.

On the machinery's `Base`, so one migration history (orders/migrations) creates it;
it is used in the shipping database only (SHIPPING_DATABASE_URL).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from outbox.clock import utcnow
from outbox.db import UtcDateTime
from outbox.models import Base

BOOKED, REJECTED = "booked", "rejected"


class Shipment(Base):
    __tablename__ = "shipments"

    # The booking id given to the carrier, derived from the order.reserved event: a retried or
    # redelivered booking is the same booking to the carrier (carrier.py).
    booking_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Unique: however often order.reserved arrives, an order has one shipment.
    order_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))  # booked | rejected
    carrier: Mapped[str] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(64), default=None)
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    postcode: Mapped[str] = mapped_column(String(16))
    country: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
