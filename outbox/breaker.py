"""A circuit breaker per consumer: pure decisions, no database, no broker.

    closed --(N transient failures in a row)--> open
    open --(probe time reached: ONE delivery admitted)--> half_open
    half_open --(the probe's downstream answered)--> closed
    half_open --(the probe failed transiently)--> open, next probe later (backoff, capped)
    half_open --(the probe's worker died: its probe lease ran out)--> another delivery probes

Only transient failures (`TransientError`: SMTP 4xx, refused, timeout) count.
A permanent one (a 5xx for one address) means the downstream answered: it
never opens the breaker, and a permanent answer to a probe closes it.

The state is stored in `consumer_state` (outbox/consumer_control.py applies
these functions with compare-and-set), so every worker on every host sees the
same breaker and it survives restarts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failures: int = 5  # transient failures in a row that open it; 0 = no breaker
    probe_seconds: float = 5.0  # first wait before a probe; doubles after each failed probe
    probe_max_seconds: float = 120.0  # the cap of that wait

    @property
    def enabled(self) -> bool:
        return self.failures > 0


@dataclass(frozen=True)
class Breaker:
    state: str = CLOSED
    failures: int = 0  # transient failures in a row while closed
    opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    probe_level: int = 0  # failed probes since it opened (the backoff exponent)
    probe_until: datetime | None = None  # half-open: the probe's lease


class Admit(Enum):
    RUN = "run"
    PROBE = "probe"  # run it as the one probe of a half-open breaker
    HOLD = "hold"  # do not run it; look again at `hold_until`


@dataclass(frozen=True)
class Admission:
    verdict: Admit
    breaker: Breaker  # the state to store (changed only when a probe is taken)
    hold_until: datetime | None = None


def probe_delay(level: int, config: BreakerConfig) -> float:
    """Seconds from a failure to the next probe: probe_seconds * 2**level, capped."""
    return float(min(config.probe_max_seconds, config.probe_seconds * 2 ** min(level, 30)))


def admit(breaker: Breaker, *, now: datetime, probe_lease_seconds: float,
          config: BreakerConfig) -> Admission:
    """May a delivery of this consumer run now?"""
    if breaker.state == CLOSED or not config.enabled:
        return Admission(Admit.RUN, breaker)
    due = breaker.next_probe_at is None or breaker.next_probe_at <= now
    probe_lost = breaker.probe_until is None or breaker.probe_until <= now  # its worker died
    probe_free = (breaker.state == OPEN and due) or (breaker.state == HALF_OPEN and probe_lost)
    if probe_free:
        taken = replace(breaker, state=HALF_OPEN, probe_until=now + timedelta(seconds=probe_lease_seconds))
        return Admission(Admit.PROBE, taken)
    if breaker.state == OPEN:
        return Admission(Admit.HOLD, breaker, hold_until=breaker.next_probe_at)
    # Half-open: the probe is out. Look again after a probe interval: by then it has answered.
    return Admission(Admit.HOLD, breaker, hold_until=now + timedelta(seconds=config.probe_seconds))


def after_transient_failure(breaker: Breaker, *, now: datetime, probe: bool,
                            config: BreakerConfig) -> Breaker:
    """A delivery failed with a TransientError."""
    if not config.enabled:
        return breaker
    if probe and breaker.state == HALF_OPEN:
        level = breaker.probe_level + 1
        return replace(breaker, state=OPEN, probe_level=level, probe_until=None,
                       next_probe_at=now + timedelta(seconds=probe_delay(level, config)))
    if breaker.state != CLOSED:
        return breaker  # already open: a failure in flight when it opened changes nothing
    failures = breaker.failures + 1
    if failures < config.failures:
        return replace(breaker, failures=failures)
    return Breaker(state=OPEN, failures=failures, opened_at=now, probe_level=0,
                   next_probe_at=now + timedelta(seconds=probe_delay(0, config)))


def after_success(breaker: Breaker, *, probe: bool) -> Breaker:
    """A success closes a half-open breaker and ends a run of failures."""
    if probe and breaker.state == HALF_OPEN:
        return Breaker()
    if breaker.state == CLOSED and breaker.failures:
        return replace(breaker, failures=0)
    return breaker


def after_permanent_failure(breaker: Breaker, *, probe: bool) -> Breaker:
    """Neither counts as a failure nor ends a run of them, unless it was the probe (it answered)."""
    if probe and breaker.state == HALF_OPEN:
        return Breaker()
    return breaker


def holds_after_failure(breaker: Breaker) -> bool:
    """A transient failure while the breaker is (now) open is the outage's, not the message's:
    the delivery is held with its attempt given back, instead of retried towards a dead letter."""
    return breaker.state != CLOSED


def hold_countdown(hold_until: datetime | None, *, now: datetime, config: BreakerConfig,
                   cap_seconds: float, rng: random.Random | None = None) -> float:
    """How long a held message waits before it looks again: until `hold_until`, spread over one
    probe interval so the held messages do not all come back in the same instant."""
    base = 0.0 if hold_until is None else max(0.0, (hold_until - now).total_seconds())
    jitter = (rng or random).uniform(0.0, config.probe_seconds)
    return min(cap_seconds, base + jitter)
