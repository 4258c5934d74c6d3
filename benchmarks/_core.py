"""The benchmark registry and measurement helpers.

A benchmark is a function registered with :func:`benchmark` that returns a list of
:class:`Result`. Entries that are compared with each other run in the same function, so that
they share one process, one machine state and one run.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["REGISTRY", "Result", "benchmark", "peak_memory", "time_per_call"]


@dataclass(slots=True)
class Result:
    name: str
    parameters: dict[str, Any]
    median: float
    min: float
    max: float
    unit: str
    baseline: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


REGISTRY: dict[str, Callable[[], list[Result]]] = {}


def benchmark(name: str) -> Callable[[Callable[[], list[Result]]], Callable[[], list[Result]]]:
    """Register ``fn`` under ``name`` (``python -m benchmarks NAME`` runs it)."""

    def deco(fn: Callable[[], list[Result]]) -> Callable[[], list[Result]]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        REGISTRY[name] = fn
        return fn

    return deco


def time_per_call(
    fn: Callable[[], object], *, number: int, repeat: int = 7, per: int = 1
) -> tuple[float, float, float]:
    """(median, min, max) seconds per unit of work: ``fn`` runs ``number`` times per sample
    and does ``per`` units of work each time."""
    fn()  # warm up
    samples = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - t0) / (number * per))
    finally:
        if gc_was:
            gc.enable()
    return statistics.median(samples), min(samples), max(samples)


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated through Python's allocators (numpy included) while ``fn`` runs."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - base
