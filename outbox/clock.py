"""Time and identifiers: every timestamp orderflow stores is UTC, every id a UUID string."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def iso(moment: datetime) -> str:
    """ISO 8601 with the zone (every stored time is UTC; see outbox.db.UtcDateTime)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
