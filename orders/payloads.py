"""The JSON payloads of the events orderflow publishes, each stamped with its schema version.

A change a consumer could notice (a field renamed, removed or changing meaning) is a new
version: bump the constant, write the new shape here, and declare an upcaster from the
previous version in orders/subscriptions.py (docs/operations.md walks through it).
Adding an optional field is not: old consumers ignore what they do not read.
"""

from __future__ import annotations

from typing import Any

from orders.models import Order, Product
from outbox.clock import utcnow
from outbox.versions import VERSION_KEY

ORDER_CREATED_VERSION = 1
CUSTOMER_SIGNED_UP_VERSION = 1


def order_created_payload(event_id: str, order: Order, products: dict[str, Product]) -> dict[str, Any]:
    """Everything a consumer needs, so no consumer has to read the order back."""
    return {
        VERSION_KEY: ORDER_CREATED_VERSION,
        "event_id": event_id,
        "order_id": order.id,
        "customer_email": order.customer_email,
        "customer_name": order.customer_name,
        "total_cents": order.total_cents,
        "currency": order.currency,
        "lines": [
            {
                "sku": line.sku,
                "name": products[line.sku].name,
                "quantity": line.quantity,
                "unit_price_cents": line.unit_price_cents,
            }
            for line in order.lines
        ],
        # Added after version 1 without a new version (old consumers ignore it); the shipping
        # service reads it from order.reserved, which carries it on.
        "shipping_address": order.shipping_address,
        "occurred_at": utcnow().isoformat(),
    }


def customer_signed_up_payload(event_id: str, customer_id: str, email: str, name: str) -> dict[str, Any]:
    return {VERSION_KEY: CUSTOMER_SIGNED_UP_VERSION, "event_id": event_id, "customer_id": customer_id,
            "email": email, "name": name, "occurred_at": utcnow().isoformat()}
