"""A rate limit per consumer across the cluster: one token bucket in Redis, taken atomically.

Celery's own `rate_limit` is per worker process (celery#5732): two workers on
two hosts would send twice the rate. Here every worker of a consumer, on any
host, takes its tokens from the same bucket, in one Lua script (atomic in
Redis, and timed by Redis's own clock, so the hosts' clocks do not matter).

The bucket holds at most `burst` tokens and refills at `rate` per second.
`burst` is a fifth of a second's worth (at least 1): at 5/s, at most 1 + 5 = 6
deliveries in any one second; at 100/s, 120. A batch takes one token per
delivery; when fewer are left it runs that many and passes the rest on.

`take` mirrors the script in Python, so the arithmetic is unit-tested without
Redis (tests/unit/test_rate_limit.py); tests/integration runs the script.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

KEY_PREFIX = "orderflow:rate:"
BURST_SECONDS = 0.2


@dataclass(frozen=True)
class Grant:
    granted: int  # deliveries that may run now
    wait: float  # when none may: seconds until the next token


def burst_for(rate: float) -> float:
    return max(1.0, rate * BURST_SECONDS)


def take(*, tokens: float, last: float, now: float, rate: float, burst: float,
         wanted: int) -> tuple[Grant, float]:
    """Refill since `last`, take up to `wanted` whole tokens; (grant, tokens left)."""
    tokens = min(burst, tokens + max(0.0, now - last) * rate)
    granted = min(wanted, int(math.floor(tokens + 1e-9)))
    tokens -= granted
    wait = 0.0 if granted else (1.0 - tokens) / rate
    return Grant(granted, wait), tokens


# The same arithmetic as `take`, atomically in Redis. KEYS[1] the bucket;
# ARGV rate, burst, wanted. Returns {granted, wait as a string}.
TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'last')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local granted = math.min(wanted, math.floor(tokens + 1e-9))
tokens = tokens - granted
local wait = 0
if granted == 0 then wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'last', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return {granted, tostring(wait)}
"""


class RateLimiter:
    """Takes tokens for one consumer from its bucket in Redis (`client`: a redis.Redis)."""

    def __init__(self, client: Any, consumer: str, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate limit of {consumer} must be above 0 per second, not {rate!r}")
        self.consumer = consumer
        self.rate = rate
        self.burst = burst_for(rate)
        self._key = f"{KEY_PREFIX}{consumer}"
        self._script = client.register_script(TAKE_SCRIPT)

    def acquire(self, wanted: int = 1) -> Grant:
        granted, wait = self._script(keys=[self._key], args=[self.rate, self.burst, max(1, wanted)])
        return Grant(int(granted), float(wait))
