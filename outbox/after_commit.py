"""After-commit callbacks: what runs once a use case's transaction has committed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

AfterCommit = Callable[[Any], None]


def run_after_commit(callback: AfterCommit | None, event: Any) -> None:
    """Call `callback(event)`; an exception is logged, never raised (the data is committed)."""
    if callback is None:
        return
    try:
        callback(event)
    except Exception:
        log.exception("after-commit callback %r failed for event %s", callback, getattr(event, "id", "?"))


def combine(*callbacks: AfterCommit | None) -> AfterCommit:
    """One callback calling each of `callbacks` in order, each isolated from the others' errors.

    The web app and the examples use `combine(InProcessDispatcher(settings), fast_path)`:
    in-process subscribers run, and durable ones are handed to the publisher.
    """
    present = [c for c in callbacks if c is not None]

    def run_all(event: Any) -> None:
        for callback in present:
            run_after_commit(callback, event)

    return run_all
