"""Wait for a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, message: str = ""
) -> T:
    """Call `probe` until it returns something truthy; fail with its last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {message} (last: {last!r})")
        time.sleep(interval)
        last = probe()
    return last
