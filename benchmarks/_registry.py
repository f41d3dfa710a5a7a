"""The benchmark registry: ``@benchmark("name")`` and the :class:`Result` every benchmark returns.

A benchmark is a function ``(quick: bool) -> Result`` in a module ``bench_<name>.py`` of
this folder; ``run.py`` imports every such module, which registers its benchmarks.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["Benchmark", "BenchmarkFunction", "Result", "benchmark", "registered"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One benchmark's figures.

    ``value`` is our measurement in ``unit``. ``baseline`` is the reference measured in
    the same run, in the same unit (``None`` when the benchmark has no baseline).
    ``ratio`` is ``value / baseline`` (lower is better). ``target`` bounds the ratio, or
    ``value`` itself when there is no baseline. ``details`` holds sizes, repetitions
    and raw timings, JSON-serialisable.
    """

    name: str
    value: float
    unit: str
    baseline: float | None
    target: float
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """``value / baseline``, or ``None`` without a baseline."""
        if self.baseline is None:
            return None
        if self.baseline == 0:
            return math.inf if self.value else 1.0
        return self.value / self.baseline

    @property
    def within_target(self) -> bool:
        """Whether the ratio (or the value, without a baseline) is at most ``target``."""
        measured = self.value if self.ratio is None else self.ratio
        return measured <= self.target

    def as_dict(self) -> dict[str, Any]:
        """The JSON object ``run.py`` prints for this result."""
        ratio = self.ratio
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": None if ratio is None else round(ratio, 4),
            "target": self.target,
            "within_target": self.within_target,
            "details": self.details,
        }


BenchmarkFunction = Callable[[bool], Result]


@dataclasses.dataclass(frozen=True, slots=True)
class Benchmark:
    """A registered benchmark."""

    name: str
    function: BenchmarkFunction
    description: str


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Register the decorated ``(quick: bool) -> Result`` function as benchmark ``name``.

    The first line of the function's docstring is its description in ``run.py --list``.
    """
    if not _NAME.match(name):
        raise ValueError(f"benchmark name {name!r} must be lowercase letters, digits and '_'")

    def register(function: BenchmarkFunction) -> BenchmarkFunction:
        if name in _REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        doc = (function.__doc__ or "").strip()
        _REGISTRY[name] = Benchmark(name, function, doc.splitlines()[0] if doc else "")
        return function

    return register


def registered() -> dict[str, Benchmark]:
    """Every registered benchmark by name, sorted by name."""
    return dict(sorted(_REGISTRY.items()))
