"""Demo catalogue. Seeding is idempotent: existing products keep their stock."""

from __future__ import annotations

from orders.models import Product
from outbox.db import SessionFactory

DEMO_PRODUCTS = [
    Product(sku="mug", name="Enamel mug", price_cents=1200, stock=100),
    Product(sku="tee", name="Organic T-shirt", price_cents=2500, stock=50),
    Product(sku="poster", name="Risograph poster", price_cents=1800, stock=20),
]


def seed_products(session_factory: SessionFactory) -> int:
    added = 0
    with session_factory.begin() as session:
        for product in DEMO_PRODUCTS:
            if session.get(Product, product.sku) is None:
                session.add(
                    Product(sku=product.sku, name=product.name, price_cents=product.price_cents,
                            stock=product.stock)
                )
                added += 1
    return added
