"""The tables of the machinery: outbox events, delivery records, failed attempts, the audit trail,
consumer control (pause, breaker).

Every table of the application shares `Base` (one metadata, one migration
history in orders/migrations). Times are `UtcDateTime`: aware UTC everywhere.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from outbox.clock import new_id, utcnow
from outbox.db import UtcDateTime
from outbox.states import PENDING


class Base(DeclarativeBase):
    pass


class OutboxEvent(Base):
    """An event written in the same transaction as the change it describes."""

    __tablename__ = "outbox"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    event_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(String(36), index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    publish_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The W3C traceparent of the request that wrote it (outbox/tracing.py); None with tracing off.
    trace_context: Mapped[str | None] = mapped_column(String(128), default=None)

    __table_args__ = (
        # The relay only ever looks for unpublished rows: keep that index small
        # however many published rows accumulate.
        Index(
            "ix_outbox_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        # The reconciler reads events by publication time (outbox/reconcile.py).
        Index("ix_outbox_published_at", "published_at"),
    )


class Delivery(Base):
    """One (event, consumer) pair: the idempotency key and the dead letter, in one row."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    consumer: Mapped[str] = mapped_column(String(64))
    # a DeliveryState (outbox/states.py): pending -> running -> retrying -> ... -> succeeded | dead,
    # and dead -> pending (replayed) or discarded, by an operator
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queue: Mapped[str | None] = mapped_column(String(64), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    traceback: Mapped[str | None] = mapped_column(Text, default=None)
    # While a worker runs the delivery, other copies of the message back off until then.
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    # The Celery task that began it last: `<event_id>:<consumer>`, or a batch's id (Flower's row).
    task_id: Mapped[str | None] = mapped_column(String(255), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("event_id", "consumer", name="uq_deliveries_event_consumer"),
        Index("ix_deliveries_state", "state", "consumer"),
    )


class DeliveryError(Base):
    """One failed attempt of a delivery: the history `dead-letters show` prints.

    The delivery row keeps only the last error; this keeps every one, and is
    what the retries-per-consumer metric counts (it survives a replay).
    """

    __tablename__ = "delivery_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    consumer: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))  # "retrying" or "dead"
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_delivery_errors_delivery", "event_id", "consumer"),
        Index("ix_delivery_errors_outcome", "outcome", "consumer"),
    )


class DeadLetterAction(Base):
    """The audit trail of what an operator did to a dead letter: who, when, why."""

    __tablename__ = "dead_letter_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # "replay" or "discard"
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    # The attempts the delivery had used up before this action (replay resets them).
    attempts_before: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ConsumerState(Base):
    """One row per consumer: paused by an operator? its circuit breaker (outbox/breaker.py).

    Shared by every worker on every host, and kept across restarts. `version`
    makes each change a compare-and-set (outbox/consumer_control.py), portable
    to SQLite and PostgreSQL alike.
    """

    __tablename__ = "consumer_state"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    paused_by: Mapped[str | None] = mapped_column(String(200), default=None)
    paused_reason: Mapped[str | None] = mapped_column(Text, default=None)
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    breaker: Mapped[str] = mapped_column(String(16), default="closed")  # closed | open | half_open
    failures: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    next_probe_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    probe_level: Mapped[int] = mapped_column(Integer, default=0)
    probe_until: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ConsumerAction(Base):
    """The audit trail of a consumer: who paused or resumed it, when and why; the breaker's
    own openings and closings (actor `breaker`)."""

    __tablename__ = "consumer_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32))  # pause | resume | breaker_open | breaker_closed
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
