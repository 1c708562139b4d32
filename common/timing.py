"""Wall-clock measurement for the figures a lesson prints (never asserted by tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Elapsed:
    seconds: float = 0.0


@contextmanager
def timer() -> Iterator[Elapsed]:
    """`with timer() as t: ...` then `t.seconds`."""
    elapsed = Elapsed()
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.seconds = time.perf_counter() - started


def best_of(action: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of `repeat` runs: the least disturbed by whatever else the machine does."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return min(runs)


@dataclass
class Comparison:
    """A measured baseline against its optimization: what `make bench` tabulates and charts."""

    name: str  # what is compared, e.g. "bulk load 100k rows into PostgreSQL"
    baseline: str  # e.g. "row-by-row INSERT"
    optimized: str  # e.g. "COPY"
    baseline_s: float
    optimized_s: float

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.optimized_s if self.optimized_s > 0 else float("inf")

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "baseline": self.baseline,
            "optimized": self.optimized,
            "baseline_s": self.baseline_s,
            "optimized_s": self.optimized_s,
            "ratio": self.ratio,
        }
