"""Unit fixtures: an in-memory database and a recording payment gateway. No services."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from orders.errors import PaymentDeclined
from orders.payments import Charge
from orders.seed import seed_products
from outbox.db import SessionFactory, make_session_factory
from outbox.models import Base


@dataclass
class FakeGateway:
    decline: bool = False
    charged: list[int] = field(default_factory=list)
    refunded: list[str] = field(default_factory=list)

    def charge(self, *, amount_cents: int, currency: str, card_token: str,
               idempotency_key: str) -> Charge:
        if self.decline:
            raise PaymentDeclined("card declined")
        self.charged.append(amount_cents)
        return Charge(f"pay_{len(self.charged)}", amount_cents, currency)

    def refund(self, *, payment_id: str) -> str:
        self.refunded.append(payment_id)
        return f"re_{payment_id}"


@pytest.fixture
def session_factory() -> SessionFactory:
    engine = create_engine("sqlite://", poolclass=StaticPool,
                           connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    seed_products(factory)
    return factory


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()
