"""Timing helpers shared by the benchmarks: interleaved runs and medians."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Pair", "interleaved", "summary", "timed"]

#: One case to measure: (our call, the baseline's call).
Pair = tuple[Callable[[], object], Callable[[], object]]


def timed(function: Callable[[], object]) -> float:
    """Seconds one call of ``function`` takes, with the garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def interleaved(
    cases: Mapping[str, Pair], repetitions: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Time each case's two calls alternately, ``repetitions`` times each.

    One repetition runs every case once, ours and the baseline back to back; who
    goes first swaps every repetition, so drift in the machine's speed (other
    processes, CPU frequency, caches) touches both sides alike. Returns, per case,
    the seconds of each call: ``(ours_samples, baseline_samples)``.
    """
    samples: dict[str, tuple[list[float], list[float]]] = {key: ([], []) for key in cases}
    for repetition in range(repetitions):
        for key, (ours, baseline) in cases.items():
            ours_samples, baseline_samples = samples[key]
            if repetition % 2 == 0:
                ours_samples.append(timed(ours))
                baseline_samples.append(timed(baseline))
            else:
                baseline_samples.append(timed(baseline))
                ours_samples.append(timed(ours))
    return samples


def summary(samples: Sequence[float], scale: float = 1.0) -> dict[str, Any]:
    """Median, min, max and the raw samples, each multiplied by ``scale``, for ``details``."""
    scaled = [sample * scale for sample in samples]
    return {
        "median": round(statistics.median(scaled), 6),
        "min": round(min(scaled), 6),
        "max": round(max(scaled), 6),
        "samples": [round(sample, 6) for sample in scaled],
    }
