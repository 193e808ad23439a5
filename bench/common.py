"""Shared bits of the benchmarks: interleaved, order-rotated timing and median (min-max) summaries."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# The benchmarks run from a plain checkout too (a lent GPU machine has torch but not lth installed).
REPO = str(Path(__file__).resolve().parents[1])
if REPO not in sys.path:
    sys.path.insert(1, REPO)


def time_interleaved(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each candidate, alternating between them every repeat, and rotating which
    goes first, so that drift in the machine's speed (other load, frequency, caches) and the order
    itself hit all of them alike."""
    for _ in range(warmup):
        for run in candidates.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            run = candidates[name]
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def summarise(values: list[float]) -> str:
    return f"{statistics.median(values):.4g} (min {min(values):.4g}, max {max(values):.4g})"


def ratio_stats(numerator: list[float], denominator: list[float]) -> list[float]:
    """Per-repeat ratios of two interleaved series."""
    return [n / d for n, d in zip(numerator, denominator)]
