"""Numbers for /metrics, read from the database on every scrape.

Read from the database rather than counted in memory, so every gunicorn
worker answers the same and nothing resets when a process restarts.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from outbox.clock import utcnow
from outbox.db import SessionFactory
from outbox.models import Delivery, DeliveryError, OutboxEvent
from outbox.states import RETRYING


@dataclass(frozen=True)
class Snapshot:
    deliveries: dict[tuple[str, str], int]  # (consumer, state) -> how many
    retries: dict[str, int]  # consumer -> failed attempts that were retried, ever
    unpublished: int  # outbox events not yet published
    outbox_lag_seconds: float  # age of the oldest unpublished event; 0 when none


def snapshot(session_factory: SessionFactory) -> Snapshot:
    with session_factory() as session:
        deliveries = {
            (consumer, state): count
            for consumer, state, count in session.execute(
                select(Delivery.consumer, Delivery.state, func.count()).group_by(
                    Delivery.consumer, Delivery.state)
            )
        }
        retries = {
            consumer: count
            for consumer, count in session.execute(
                select(DeliveryError.consumer, func.count())
                .where(DeliveryError.outcome == RETRYING).group_by(DeliveryError.consumer)
            )
        }
        unpublished, oldest = session.execute(
            select(func.count(), func.min(OutboxEvent.created_at)).where(OutboxEvent.published_at.is_(None))
        ).one()
    lag = 0.0
    if oldest is not None:  # aware UTC on every database (outbox.db.UtcDateTime)
        lag = max(0.0, (utcnow() - oldest).total_seconds())
    return Snapshot(deliveries, retries, unpublished or 0, lag)
