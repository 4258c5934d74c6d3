"""The device's signal pipeline (cleaning filter, QRS detection, beat features) on a
30-minute ECG: speed as multiples of real time, and peak memory.

``pipeline/stream-1s`` feeds :class:`smfel.sensors.BeatExtractor` one-second chunks, as a
device reading a board does; ``pipeline/whole`` gives it the record in one chunk. The baseline
in the same run, ``pipeline/baseline-batch``, is the usual offline approach on the same
samples: zero-phase ``sosfiltfilt`` of the whole record, the same Pan-Tompkins transform in
whole-array numpy, ``scipy.signal.find_peaks`` with a fixed threshold, and a beat window per
peak. Peak memory (tracemalloc: Python and numpy allocations) is measured on the first 10
minutes and on the whole 30 minutes: the streaming pipeline's must not grow with the length.

Data: MIT-BIH record 208 from ``SMFEL_MITDB`` (default ``../shared/data/mitdb``) when present,
else 30 minutes of the synthetic source.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.signal import find_peaks, sosfiltfilt

from benchmarks._core import Result, benchmark, peak_memory, time_per_call
from smfel.sensors import MODEL_FS, BeatExtractor, Chunk, open_source, read_record
from smfel.sensors.filters import cleaning_sos, qrs_band_sos

F64 = NDArray[np.float64]


def _signal() -> tuple[F64, str]:
    root = Path(__file__).resolve().parents[1]
    d = Path(os.environ.get("SMFEL_MITDB", root.parent / "shared" / "data" / "mitdb"))
    if (d / "208.hea").is_file():
        return read_record(d, "208").mv("MLII")[: int(1800 * MODEL_FS)], "mitdb/208 MLII"
    with open_source("synthetic://?duration=1800&speed=0&chunk=60&seed=3") as src:
        return np.concatenate([c.samples for c in src]), "synthetic"


def _stream(x: F64, chunk: int) -> int:
    ex = BeatExtractor()
    n = 0
    for a in range(0, len(x), chunk):
        n += len(ex.push(Chunk(a, MODEL_FS, x[a : a + chunk])))
    return n + len(ex.flush())


def _batch(x: F64) -> int:
    fs = MODEL_FS
    clean = sosfiltfilt(cleaning_sos(fs), x)
    bp = sosfiltfilt(qrs_band_sos(fs), x)
    d = np.convolve(bp, np.array([2.0, 1.0, 0.0, -1.0, -2.0]) / 8.0, mode="same")
    m = np.convolve(d * d, np.ones(54) / 54.0, mode="same")
    peaks, _ = find_peaks(m, height=0.3 * np.percentile(m, 99), distance=72)
    idx = peaks[(peaks >= 90) & (peaks < len(x) - 150)][:, None] + np.arange(-90, 150)[None, :]
    windows = clean[idx][:, ::6]
    return int(windows.shape[0])


@benchmark("pipeline")
def bench_pipeline() -> list[Result]:
    x, source = _signal()
    seconds = len(x) / MODEL_FS
    ten = x[: int(600 * MODEL_FS)]
    cases: dict[str, Callable[[F64], int]] = {
        "pipeline/stream-1s": lambda s: _stream(s, int(MODEL_FS)),
        "pipeline/whole": lambda s: _stream(s, len(s)),
        "pipeline/baseline-batch": _batch,
    }
    out: list[Result] = []
    for name, fn in cases.items():
        beats = fn(x)
        med, lo, hi = time_per_call(partial(fn, x), number=1, repeat=5)
        mem30 = peak_memory(partial(fn, x))
        mem10 = peak_memory(partial(fn, ten))
        out.append(
            Result(
                name=name,
                parameters={"signal": source, "seconds": round(seconds, 1), "fs": MODEL_FS},
                median=seconds / med,
                min=seconds / hi,
                max=seconds / lo,
                unit="x real time",
                baseline=None if name.endswith("batch") else "pipeline/baseline-batch",
                extra={
                    "seconds_per_record": med,
                    "beats": beats,
                    "peak_bytes_10min": mem10,
                    "peak_bytes_30min": mem30,
                    "memory_growth_30_over_10": mem30 / mem10,
                },
            )
        )
    return out
