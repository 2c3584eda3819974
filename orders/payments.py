"""The payment gateway interface, and a simulated gateway for the demo and tests.

Placing an order charges by a *direct call*: the charge must succeed before
anything is written. A real gateway (Stripe, Adyen...) implements `PaymentGateway`.

Test card tokens understood by `SimulatedGateway`:

    tok_visa       the charge succeeds
    tok_declined   the card is declined            -> PaymentDeclined (HTTP 402)
    tok_timeout    the gateway does not answer     -> PaymentUnavailable (HTTP 503)

Any other token is declined, as a real gateway declines an unknown card.

Refunds are kept in memory, or in a SQLite file (`PAYMENTS_LEDGER`) that every
process shares, as the real gateway's records would be: a worker killed after
the refund and before its commit asks again and is told the same refund.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
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

    def refund(self, *, payment_id: str) -> str:
        """Give the money back; returns the refund's id. Idempotent by payment id: asked again
        for the same payment (a retried compensation), it refunds nothing more and answers the
        same id. Called when the order could not be stored, and when shipping refused it."""
        ...


@dataclass
class SimulatedGateway:
    """In-memory gateway with the test tokens above. Thread-safe."""

    timeout_seconds: float = 2.0
    charges: dict[str, Charge] = field(default_factory=dict)
    refunded: set[str] = field(default_factory=set)
    # A SQLite file keeping the refunds across processes ("" = this process's memory only).
    ledger: str = ""
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

    def refund(self, *, payment_id: str) -> str:
        refund_id = "re_" + payment_id.removeprefix("pay_")
        with self._lock:
            self.refunded.add(payment_id)
            if self.ledger:
                record_refund(self.ledger, payment_id, refund_id)
        return refund_id


def record_refund(ledger: str, payment_id: str, refund_id: str) -> None:
    """One row per refunded payment; `calls` counts how often it was asked (tests read it)."""
    Path(ledger).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(ledger, timeout=30)
    try:
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS refunds (payment_id TEXT PRIMARY KEY, "
                       "refund_id TEXT NOT NULL, calls INTEGER NOT NULL)")
            db.execute("INSERT INTO refunds VALUES (?, ?, 1) ON CONFLICT (payment_id) "
                       "DO UPDATE SET calls = calls + 1", (payment_id, refund_id))
    finally:
        db.close()


def refunds_in(ledger: str) -> dict[str, int]:
    """payment id -> how many times its refund was asked for (one refund each, whatever the count)."""
    if not Path(ledger).exists():
        return {}
    db = sqlite3.connect(ledger, timeout=30)
    try:
        return dict(db.execute("SELECT payment_id, calls FROM refunds").fetchall())
    except sqlite3.OperationalError:  # no refund yet: no table
        return {}
    finally:
        db.close()
