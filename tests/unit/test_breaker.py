"""The circuit breaker's decisions, without a database or a broker (outbox/breaker.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from outbox import breaker as b
from outbox.breaker import Admit, Breaker, BreakerConfig

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = BreakerConfig(failures=3, probe_seconds=2.0, probe_max_seconds=10.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tripped() -> Breaker:
    state = Breaker()
    for _ in range(CONFIG.failures):
        state = b.after_transient_failure(state, now=T0, probe=False, config=CONFIG)
    return state


def test_a_run_of_transient_failures_opens_it_and_holds_deliveries_until_the_probe_time():
    state = Breaker()
    for _ in range(CONFIG.failures - 1):
        state = b.after_transient_failure(state, now=T0, probe=False, config=CONFIG)
        assert b.admit(state, now=T0, probe_lease_seconds=9, config=CONFIG).verdict is Admit.RUN
    state = b.after_transient_failure(state, now=T0, probe=False, config=CONFIG)
    assert state.state == b.OPEN and state.next_probe_at == at(2)
    held = b.admit(state, now=at(1), probe_lease_seconds=9, config=CONFIG)
    assert (held.verdict, held.hold_until) == (Admit.HOLD, at(2))
    assert b.holds_after_failure(state)


def test_a_success_ends_the_run_and_permanent_failures_never_count():
    state = b.after_transient_failure(Breaker(), now=T0, probe=False, config=CONFIG)
    state = b.after_transient_failure(state, now=T0, probe=False, config=CONFIG)
    assert b.after_success(state, probe=False).failures == 0
    for _ in range(10):
        state = b.after_permanent_failure(state, probe=False)
    assert state.state == b.CLOSED and state.failures == 2


def test_exactly_one_probe_when_due_its_success_closes():
    state = tripped()
    probe = b.admit(state, now=at(2), probe_lease_seconds=9, config=CONFIG)
    assert probe.verdict is Admit.PROBE and probe.breaker.state == b.HALF_OPEN
    other = b.admit(probe.breaker, now=at(2.1), probe_lease_seconds=9, config=CONFIG)
    assert other.verdict is Admit.HOLD, "a second delivery must wait for the probe's answer"
    assert b.after_success(probe.breaker, probe=True) == Breaker()


def test_a_failed_probe_reopens_with_a_doubling_capped_wait():
    state = tripped()
    waits = []
    now = at(2)
    for _ in range(5):
        taken = b.admit(state, now=now, probe_lease_seconds=9, config=CONFIG)
        assert taken.verdict is Admit.PROBE
        state = b.after_transient_failure(taken.breaker, now=now, probe=True, config=CONFIG)
        assert state.state == b.OPEN
        waits.append((state.next_probe_at - now).total_seconds())
        now = state.next_probe_at
    assert waits == [4.0, 8.0, 10.0, 10.0, 10.0]


def test_a_probe_whose_worker_died_is_taken_again_after_its_lease():
    taken = b.admit(tripped(), now=at(2), probe_lease_seconds=9, config=CONFIG)
    assert b.admit(taken.breaker, now=at(10), probe_lease_seconds=9, config=CONFIG).verdict is Admit.HOLD
    again = b.admit(taken.breaker, now=at(11), probe_lease_seconds=9, config=CONFIG)
    assert again.verdict is Admit.PROBE, "the breaker must not stay stuck half-open"


def test_a_permanent_answer_to_the_probe_closes_it_the_downstream_answered():
    taken = b.admit(tripped(), now=at(2), probe_lease_seconds=9, config=CONFIG)
    assert b.after_permanent_failure(taken.breaker, probe=True).state == b.CLOSED


def test_failures_in_flight_when_it_opened_change_nothing_and_zero_disables_it():
    state = tripped()
    assert b.after_transient_failure(state, now=at(1), probe=False, config=CONFIG) == state
    off = BreakerConfig(failures=0)
    state = Breaker()
    for _ in range(50):
        state = b.after_transient_failure(state, now=T0, probe=False, config=off)
    assert b.admit(state, now=T0, probe_lease_seconds=9, config=off).verdict is Admit.RUN


def test_held_messages_come_back_spread_over_one_probe_interval_and_capped():
    rng = random.Random(1)
    waits = [b.hold_countdown(at(5), now=T0, config=CONFIG, cap_seconds=100, rng=rng) for _ in range(200)]
    assert all(5 <= w <= 7 for w in waits) and max(waits) - min(waits) > 1
    assert b.hold_countdown(at(500), now=T0, config=CONFIG, cap_seconds=30) == 30
