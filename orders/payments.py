"""The payment gateway interface, and a simulated gateway for the demo and tests.

Placing an order charges by a *direct call*: the charge must succeed before
anything is written. A real gateway (Stripe, Adyen...) implements `PaymentGateway`.

Test card tokens understood by `SimulatedGateway`:

    tok_visa       the charge succeeds
    tok_declined   the card is declined            -> PaymentDeclined (HTTP 402)
    tok_timeout    the gateway does not answer     -> PaymentUnavailable (HTTP 503)

Any other token is declined, as a real gateway declines an unknown card.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from orders.errors import PaymentDeclined, PaymentUnavailable

CARD_OK = "tok_visa"
CARD_DECLINED = "tok_declined"
CARD_TIMEOUT = "tok_timeout"


@dataclass(frozen=True)
class Charge:
    payment_id: str
    amount_cents: int
    currency: str


class PaymentGateway(Protocol):
    def charge(
        self, *, amount_cents: int, currency: str, card_token: str, idempotency_key: str
    ) -> Charge:
        """Charge the card or raise PaymentDeclined / PaymentUnavailable."""
        ...

    def refund(self, *, payment_id: str) -> None:
        """Give the money back (called when the order could not be stored)."""
        ...


@dataclass
class SimulatedGateway:
    """In-memory gateway with the test tokens above. Thread-safe."""

    timeout_seconds: float = 2.0
    charges: dict[str, Charge] = field(default_factory=dict)
    refunded: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def charge(
        self, *, amount_cents: int, currency: str, card_token: str, idempotency_key: str
    ) -> Charge:
        if card_token == CARD_TIMEOUT:
            time.sleep(min(self.timeout_seconds, 0.2))  # stand-in for a client-side timeout
            raise PaymentUnavailable("payment gateway timed out")
        if card_token != CARD_OK:
            raise PaymentDeclined("card declined")
        with self._lock:
            # Same idempotency key, same charge: a retried request is not charged twice.
            existing = self.charges.get(idempotency_key)
            if existing is None:
                existing = Charge(f"pay_{uuid.uuid4().hex[:16]}", amount_cents, currency)
                self.charges[idempotency_key] = existing
            return existing

    def refund(self, *, payment_id: str) -> None:
        with self._lock:
            self.refunded.add(payment_id)
