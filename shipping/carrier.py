"""The carrier interface, and a simulated carrier for the demo and tests.

Booking is a *direct call* from the shipping consumer, like charging a card
(orders/payments.py). A real carrier client implements `Carrier`; it must be
idempotent by `booking_id` (carriers' APIs take an idempotency key): the
consumer may call it again for the same booking after a crash, a retry or a
redelivery, and must get the same parcel back, not a second one.

Test postcodes understood by `SimulatedCarrier`:

    00000   the carrier refuses the address for good   -> CarrierRejected (shipment.rejected)
    99999   the carrier is unavailable for the first `unavailable_attempts` attempts of
            a booking, then books it                    -> CarrierUnavailable (retried)

The simulated carrier keeps its bookings in a SQLite file (`CARRIER_LEDGER`),
shared by every process as the real carrier's records would be: a worker
killed between the carrier's answer and its own commit finds its booking there.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from outbox.errors import OrderflowError, TransientError

CARRIER_NAME = "Simulated Parcel Co."
POSTCODE_REJECTED = "00000"
POSTCODE_UNAVAILABLE = "99999"


@dataclass(frozen=True)
class Booking:
    booking_id: str
    tracking_number: str
    carrier: str


class CarrierRejected(OrderflowError):
    """The carrier will never take this parcel (an outcome: the order is cancelled)."""

    code = "carrier_rejected"


class CarrierUnavailable(TransientError):
    """The carrier did not answer or failed: try the same booking again later."""


class Carrier(Protocol):
    def book(self, *, booking_id: str, postcode: str, country: str, parcels: int) -> Booking:
        """Book one shipment, or raise CarrierRejected / CarrierUnavailable. Idempotent by booking_id."""
        ...


def tracking_number_for(booking_id: str) -> str:
    return "TRK" + hashlib.sha256(booking_id.encode()).hexdigest()[:12].upper()


class SimulatedCarrier:
    """The test postcodes above; bookings in a SQLite file (or this process's memory: path "")."""

    def __init__(self, ledger: str = "", *, unavailable_attempts: int = 3,
                 latency_seconds: float = 0.0) -> None:
        self._path = ledger or ":memory:"
        self._unavailable_attempts = unavailable_attempts
        self._latency = latency_seconds
        self._lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        if ledger:
            Path(ledger).parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS bookings (booking_id TEXT PRIMARY KEY, "
                       "tracking_number TEXT NOT NULL, postcode TEXT NOT NULL, calls INTEGER NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS attempts (booking_id TEXT PRIMARY KEY, "
                       "count INTEGER NOT NULL)")

    def book(self, *, booking_id: str, postcode: str, country: str, parcels: int) -> Booking:
        compact = postcode.replace(" ", "")
        with self._lock, self._connect() as db:
            if compact == POSTCODE_REJECTED:
                raise CarrierRejected(f"the carrier does not deliver to postcode {postcode} ({country})")
            if compact == POSTCODE_UNAVAILABLE:
                db.execute("INSERT INTO attempts VALUES (?, 1) ON CONFLICT (booking_id) "
                           "DO UPDATE SET count = count + 1", (booking_id,))
                (count,) = db.execute("SELECT count FROM attempts WHERE booking_id = ?",
                                      (booking_id,)).fetchone()
                if count <= self._unavailable_attempts:
                    db.commit()  # the attempt counts even though this call fails
                    # The same words every time (a real carrier's 503 does not count): the
                    # operator's dead-letter groups gather the letters of one outage together.
                    raise CarrierUnavailable(f"carrier unavailable for booking {booking_id}, try later")
            # Same booking id, same parcel: `calls` counts how often it was asked (tests read it).
            db.execute("INSERT INTO bookings VALUES (?, ?, ?, 1) ON CONFLICT (booking_id) "
                       "DO UPDATE SET calls = calls + 1",
                       (booking_id, tracking_number_for(booking_id), postcode))
            (tracking,) = db.execute("SELECT tracking_number FROM bookings WHERE booking_id = ?",
                                     (booking_id,)).fetchone()
        time.sleep(self._latency)  # booked at the carrier; the answer is still on its way
        return Booking(booking_id, tracking, CARRIER_NAME)

    def bookings(self) -> dict[str, int]:
        """booking id -> how many times it was asked for (one parcel each, whatever the count)."""
        with self._lock, self._connect() as db:
            return dict(db.execute("SELECT booking_id, calls FROM bookings").fetchall())

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction, committed on the way out (closed, for a file)."""
        if self._path == ":memory:":
            if self._memory is None:
                self._memory = sqlite3.connect(":memory:", check_same_thread=False)
            with self._memory:
                yield self._memory
            return
        db = sqlite3.connect(self._path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()
