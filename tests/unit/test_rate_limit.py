"""The token bucket's arithmetic (outbox/rate_limit.py); the Lua twin runs in tests/integration."""

from __future__ import annotations

from outbox.rate_limit import burst_for, take


def simulate(rate: float, wanted_per_call: int, calls_per_second: float, seconds: float) -> list[float]:
    """Times at which deliveries were granted, for callers asking at a steady pace."""
    burst = burst_for(rate)
    tokens, last, granted_at = burst, 0.0, []
    step = 1.0 / calls_per_second
    now = 0.0
    while now < seconds:
        grant, tokens = take(tokens=tokens, last=last, now=now, rate=rate, burst=burst,
                             wanted=wanted_per_call)
        last = now
        granted_at += [now] * grant.granted
        now += step
    return granted_at


def most_in_any_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times) if times else 0


def test_five_per_second_never_more_than_six_in_any_second_however_hard_it_is_asked():
    times = simulate(rate=5, wanted_per_call=1, calls_per_second=200, seconds=10)
    assert most_in_any_second(times) <= 6
    assert 48 <= len(times) <= 52


def test_a_batch_takes_one_token_per_delivery_and_gets_only_what_is_left():
    burst = burst_for(100)  # 20
    grant, left = take(tokens=burst, last=0, now=0, rate=100, burst=burst, wanted=50)
    assert (grant.granted, left) == (20, 0)
    times = simulate(rate=100, wanted_per_call=50, calls_per_second=50, seconds=5)
    assert most_in_any_second(times) <= 120


def test_nothing_left_says_how_long_until_the_next_token():
    grant, _ = take(tokens=0.5, last=0, now=0, rate=5, burst=1, wanted=1)
    assert grant.granted == 0 and abs(grant.wait - 0.1) < 1e-9
