"""The JSON payloads of the events orderflow publishes."""

from __future__ import annotations

from typing import Any

from orders.models import Order, Product
from outbox.clock import utcnow


def order_created_payload(event_id: str, order: Order, products: dict[str, Product]) -> dict[str, Any]:
    """Everything a consumer needs, so no consumer has to read the order back."""
    return {
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
        "occurred_at": utcnow().isoformat(),
    }
