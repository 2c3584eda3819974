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
    """Ratio of medians, with the range from the per-repetition ratios (same rep = same noise)."""
    pairs = [a / b for a, b in zip(num, den, strict=False) if b]
    return {"median": statistics.median(num) / statistics.median(den),
            "min": min(pairs), "max": max(pairs), "n": len(pairs)}
