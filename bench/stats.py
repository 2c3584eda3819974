"""Median / min–max summaries and percentiles, shared by every benchmark."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of raw samples."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: Iterable[float]) -> dict[str, float]:
    vals = list(values)
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def ratio_summary(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    """Median of the per-repetition ratios, with their range.

    Each ratio pairs two variants measured next to each other in time, so they share the
    machine's noise of that moment; a ratio of medians would pair values from different
    moments (one slow repetition of one side then moves the verdict)."""
    pairs = [a / b for a, b in zip(num, den, strict=False) if b]
    return {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs), "n": len(pairs)}
