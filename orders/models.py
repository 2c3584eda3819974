"""The shop's tables: catalogue, orders and their lines, revenue, customers.

They share the machinery's `Base` (outbox/models.py), so one metadata and one
migration history (orders/migrations) hold every table.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from outbox.clock import new_id, utcnow
from outbox.db import UtcDateTime
from outbox.models import Base


class Product(Base):
    __tablename__ = "products"

    sku: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer, default=0)


# An order's status (`Order.status`), in the order they happen (docs/workflow.md):
# placed -> reserved | backordered (inventory) -> shipped (shipping booked it) | cancelled
# (shipping rejected it: refunded, stock released).
PLACED, RESERVED, BACKORDERED = "placed", "reserved", "backordered"
SHIPPED, CANCELLED = "shipped", "cancelled"
# The address columns, in the order of the `shipping_address` object's fields.
ADDRESS_FIELDS = ("line1", "city", "postcode", "country")


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_email: Mapped[str] = mapped_column(String(320))
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    total_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    payment_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=PLACED)
    # The shipping address (null only for orders placed before it was asked for).
    ship_line1: Mapped[str | None] = mapped_column(String(200), default=None)
    ship_city: Mapped[str | None] = mapped_column(String(200), default=None)
    ship_postcode: Mapped[str | None] = mapped_column(String(16), default=None)
    ship_country: Mapped[str | None] = mapped_column(String(2), default=None)
    # Set when the shipping service booked it (shipment.booked)...
    tracking_number: Mapped[str | None] = mapped_column(String(64), default=None)
    # ...or when it could not, and the payment was refunded (shipment.rejected).
    refund_id: Mapped[str | None] = mapped_column(String(64), default=None)
    refunded_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)

    @property
    def shipping_address(self) -> dict[str, str] | None:
        if self.ship_line1 is None:
            return None
        return {name: getattr(self, f"ship_{name}") for name in ADDRESS_FIELDS}

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.id", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    sku: Mapped[str] = mapped_column(ForeignKey("products.sku"))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    # Set by the inventory consumer: "reserved" or "backordered" (an outcome, not an error).
    fulfilment: Mapped[str | None] = mapped_column(String(16), default=None)

    order: Mapped[Order] = relationship(back_populates="lines")


class RevenueEntry(Base):
    """Written by the analytics consumer; one row per event (its primary key)."""

    __tablename__ = "analytics_revenue"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(36), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Customer(Base):
    """A signed-up customer; signing up writes `customer.signed_up` to the outbox."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("email", name="uq_customers_email"),)
