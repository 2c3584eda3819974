"""Whether a consumer's deliveries may run: paused by an operator, or held by its circuit breaker.

The state is one `consumer_state` row per consumer (outbox/models.py), read by
every worker on every host at the start of a delivery (tasks/consumer_gate.py)
and kept across restarts. Each change is a compare-and-set on its `version`:
read, decide with the pure functions of outbox/breaker.py, write only if
nobody changed the row meanwhile, else read again. Two workers can therefore
never both take the one probe of a half-open breaker, on SQLite or PostgreSQL.

Pause and resume are an operator's; every one is audited (who, when, why) in
`consumer_actions`, as are the breaker's own openings and closings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from outbox import breaker as breakers
from outbox.breaker import Admission, Admit, Breaker, BreakerConfig
from outbox.clock import iso, utcnow
from outbox.databases import ServiceDatabases
from outbox.db import SessionFactory, insert_for
from outbox.errors import InvalidArgument, UnknownConsumer
from outbox.models import ConsumerAction, ConsumerState, Delivery
from outbox.states import HELD
from outbox.subscriptions import all_consumers

log = logging.getLogger(__name__)

PAUSE, RESUME, BREAKER_OPEN, BREAKER_CLOSED = "pause", "resume", "breaker_open", "breaker_closed"
BREAKER_ACTOR = "breaker"
CAS_TRIES = 5

SUCCESS, TRANSIENT, PERMANENT = "success", "transient", "permanent"


@dataclass(frozen=True)
class ConsumerView:
    consumer: str
    version: int = 0
    paused: bool = False
    paused_by: str | None = None
    paused_reason: str | None = None
    paused_at: datetime | None = None
    breaker: Breaker = field(default_factory=Breaker)

    @property
    def status(self) -> str:
        """What an operator reads first: running, paused, breaker_open or breaker_half_open."""
        if self.paused:
            return "paused"
        if self.breaker.state == breakers.CLOSED:
            return "running"
        return f"breaker_{self.breaker.state}"


def read(session_factory: SessionFactory, consumer: str) -> ConsumerView:
    with session_factory() as session:
        row = session.get(ConsumerState, consumer)
        return _view(consumer, row)


def admit(session_factory: SessionFactory, consumer: str, *, config: BreakerConfig,
          probe_lease_seconds: float, pause_recheck_seconds: float,
          now: datetime | None = None) -> tuple[Admission, ConsumerView]:
    """May a delivery of `consumer` run now? Takes the probe of a breaker due for one."""
    for _ in range(CAS_TRIES):
        moment = now or utcnow()
        view = read(session_factory, consumer)
        if view.paused:
            until = moment + timedelta(seconds=pause_recheck_seconds)
            return Admission(Admit.HOLD, view.breaker, hold_until=until), view
        admission = breakers.admit(view.breaker, now=moment, probe_lease_seconds=probe_lease_seconds,
                                   config=config)
        if admission.verdict is not Admit.PROBE:
            return admission, view
        if _write(session_factory, view, admission.breaker):
            log.info("consumer=%s breaker half-open: one delivery probes", consumer)
            return admission, replace(view, version=view.version + 1, breaker=admission.breaker)
    # Others keep changing it (many workers racing for the probe): one of them has it.
    return Admission(Admit.HOLD, view.breaker, hold_until=(now or utcnow())), view


def record(session_factory: SessionFactory, consumer: str, *, outcome: str, probe: bool,
           config: BreakerConfig, now: datetime | None = None) -> Breaker:
    """Tell the breaker how a delivery ended (SUCCESS, TRANSIENT or PERMANENT); its new state."""
    for _ in range(CAS_TRIES):
        moment = now or utcnow()
        view = read(session_factory, consumer)
        before = view.breaker
        if outcome == TRANSIENT:
            after = breakers.after_transient_failure(before, now=moment, probe=probe, config=config)
        elif outcome == SUCCESS:
            after = breakers.after_success(before, probe=probe)
        else:
            after = breakers.after_permanent_failure(before, probe=probe)
        if after == before:
            return after
        if _write(session_factory, view, after, audit=_breaker_audit(consumer, before, after)):
            return after
    return read(session_factory, consumer).breaker


def pause(session_factory: SessionFactory, consumer: str, *, actor: str, reason: str) -> ConsumerView:
    """Hold every delivery of `consumer` until resumed; the others run on. Audited."""
    _check(consumer, actor)
    if not reason.strip():
        raise InvalidArgument("pausing needs a reason (--reason / \"reason\"): the audit trail records it")
    return _set_paused(session_factory, consumer, paused=True, actor=actor, reason=reason)


def resume(session_factory: SessionFactory, consumer: str, *, actor: str, reason: str = "") -> ConsumerView:
    """Let a paused consumer's held deliveries flow again (at its rate limit, if it has one)."""
    _check(consumer, actor)
    return _set_paused(session_factory, consumer, paused=False, actor=actor, reason=reason)


def list_consumers(session_factory: SessionFactory, *, audit_limit: int = 5) -> list[dict[str, Any]]:
    """Every durable consumer: status, pause (who, when, why), breaker, held deliveries, recent audit."""
    with session_factory() as session:
        rows = {row.consumer: row for row in session.scalars(select(ConsumerState))}
        held = dict(session.execute(select(Delivery.consumer, func.count()).where(Delivery.state == HELD)
                                    .group_by(Delivery.consumer)).all())
        result = []
        for consumer in all_consumers():
            view = _view(consumer, rows.get(consumer))
            actions = session.scalars(select(ConsumerAction).where(ConsumerAction.consumer == consumer)
                                      .order_by(ConsumerAction.id.desc()).limit(audit_limit)).all()
            result.append({**describe(view), "held": held.get(consumer, 0),
                           "audit": [action_dict(a) for a in actions]})
    return result


def views(session_factory: SessionFactory) -> dict[str, ConsumerView]:
    """Every durable consumer's state in one read (for /metrics)."""
    with session_factory() as session:
        rows = {row.consumer: row for row in session.scalars(select(ConsumerState))}
    return {consumer: _view(consumer, rows.get(consumer)) for consumer in all_consumers()}


def list_consumers_everywhere(databases: ServiceDatabases, *, audit_limit: int = 5) -> list[dict[str, Any]]:
    """`list_consumers`, each consumer read from its own service's database (where its workers
    read its pause and breaker), by name."""
    rows = [row for database in databases.distinct()
            for row in list_consumers(database, audit_limit=audit_limit)
            if databases.of_consumer(row["consumer"]) is database]
    return sorted(rows, key=lambda row: row["consumer"])


def views_everywhere(databases: ServiceDatabases) -> dict[str, ConsumerView]:
    """`views`, each consumer's from its own service's database."""
    found = {}
    for database in databases.distinct():
        found.update({consumer: view for consumer, view in views(database).items()
                      if databases.of_consumer(consumer) is database})
    return dict(sorted(found.items()))


def describe(view: ConsumerView) -> dict[str, Any]:
    b = view.breaker
    return {
        "consumer": view.consumer,
        "status": view.status,
        "paused": view.paused,
        "paused_by": view.paused_by,
        "paused_reason": view.paused_reason,
        "paused_at": _iso(view.paused_at),
        "breaker": {"state": b.state, "failures_in_a_row": b.failures, "opened_at": _iso(b.opened_at),
                    "next_probe_at": _iso(b.next_probe_at), "failed_probes": b.probe_level},
    }


def action_dict(action: ConsumerAction) -> dict[str, Any]:
    return {"action": action.action, "actor": action.actor, "reason": action.reason,
            "at": _iso(action.created_at)}


def audit_trail(session_factory: SessionFactory, consumer: str) -> list[dict[str, Any]]:
    with session_factory() as session:
        actions = session.scalars(select(ConsumerAction).where(ConsumerAction.consumer == consumer)
                                  .order_by(ConsumerAction.id)).all()
        return [action_dict(a) for a in actions]


def _set_paused(session_factory: SessionFactory, consumer: str, *, paused: bool, actor: str,
                reason: str) -> ConsumerView:
    now = utcnow()
    with session_factory.begin() as session:
        _ensure_row(session, consumer)
        values: dict[str, Any] = {"paused": paused, "version": ConsumerState.version + 1, "updated_at": now}
        if paused:
            values.update(paused_by=actor, paused_reason=reason, paused_at=now)
        else:
            values.update(paused_by=None, paused_reason=None, paused_at=None)
        session.execute(update(ConsumerState).where(ConsumerState.consumer == consumer).values(**values))
        session.add(ConsumerAction(consumer=consumer, action=PAUSE if paused else RESUME, actor=actor,
                                   reason=reason, created_at=now))
    log.warning("consumer=%s %s by %s: %s", consumer, "paused" if paused else "resumed", actor, reason)
    return read(session_factory, consumer)


def _write(session_factory: SessionFactory, view: ConsumerView, new: Breaker,
           audit: ConsumerAction | None = None) -> bool:
    """Store `new` if the row is still at `view.version`; False if someone changed it first."""
    with session_factory.begin() as session:
        _ensure_row(session, view.consumer)
        result = session.execute(
            update(ConsumerState)
            .where(ConsumerState.consumer == view.consumer, ConsumerState.version == view.version)
            .values(version=view.version + 1, breaker=new.state, failures=new.failures,
                    opened_at=new.opened_at, next_probe_at=new.next_probe_at, probe_level=new.probe_level,
                    probe_until=new.probe_until, updated_at=utcnow())
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        if audit is not None:
            session.add(audit)
    return True


def _breaker_audit(consumer: str, before: Breaker, after: Breaker) -> ConsumerAction | None:
    if before.state == breakers.CLOSED and after.state == breakers.OPEN:
        log.warning("consumer=%s breaker OPEN after %d transient failures in a row; deliveries held",
                    consumer, after.failures)
        return ConsumerAction(consumer=consumer, action=BREAKER_OPEN, actor=BREAKER_ACTOR,
                              reason=f"{after.failures} transient failures in a row")
    if before.state != breakers.CLOSED and after.state == breakers.CLOSED:
        log.warning("consumer=%s breaker CLOSED: a probe got through; held deliveries flow again", consumer)
        return ConsumerAction(consumer=consumer, action=BREAKER_CLOSED, actor=BREAKER_ACTOR,
                              reason=f"probe answered after {before.probe_level} failed probe(s)")
    return None


def _ensure_row(session: Any, consumer: str) -> None:
    session.execute(
        insert_for(session, ConsumerState)
        .values(consumer=consumer, version=0, paused=False, breaker=breakers.CLOSED, failures=0,
                probe_level=0, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["consumer"])
    )


def _view(consumer: str, row: ConsumerState | None) -> ConsumerView:
    if row is None:
        return ConsumerView(consumer)
    return ConsumerView(
        consumer=consumer, version=row.version, paused=row.paused, paused_by=row.paused_by,
        paused_reason=row.paused_reason, paused_at=row.paused_at,
        breaker=Breaker(state=row.breaker, failures=row.failures, opened_at=row.opened_at,
                        next_probe_at=row.next_probe_at, probe_level=row.probe_level,
                        probe_until=row.probe_until),
    )


def _check(consumer: str, actor: str) -> None:
    if consumer not in all_consumers():
        raise UnknownConsumer(f"unknown consumer {consumer!r}: one of {', '.join(all_consumers())}")
    if not actor or not actor.strip():
        raise InvalidArgument("say who you are (--by / \"by\"): the audit trail records it")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment.replace(microsecond=0))
