"""Dashboard telemetry: flat JSON records with units in the key names and an RFC 3339 ``ts``.

One record per interval on ``smfel/v1/nodes/{node}/telemetry``. Flat (no nesting) so that
Telegraf's ``json`` parser, Grafana, Node-RED and Home Assistant value templates read each field
directly; the unit is the key's suffix (``_bpm``, ``_per_min``, ``_us``, ``_mb``, ``_pct``,
``_s``). Only counts, rates and timings go in: never a sample of ECG, never a patient identifier.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TelemetryWindow", "rss_mb", "utc_now"]

_CLASSES = ("N", "S", "V", "F", "Q")


def utc_now(ts: float | None = None) -> str:
    """RFC 3339 UTC time with milliseconds, e.g. ``2026-11-24T20:00:00.123Z``."""
    t = time.time() if ts is None else ts
    return (
        dt.datetime.fromtimestamp(t, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


@dataclass(slots=True)
class TelemetryWindow:
    """Counters since the last record, plus running totals; one instance per agent.

    ``add_beat`` takes the beat's signal time (s), the predicted class and the inference time;
    :meth:`record` turns the window into a flat dict and starts the next window.
    """

    node_id: str
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_CLASSES, 0))
    window: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_CLASSES, 0))
    beat_times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    latency_sum_us: float = 0.0
    latency_max_us: float = 0.0
    latency_n: int = 0
    started: float = field(default_factory=time.monotonic)
    cpu_started: float = field(default_factory=time.process_time)
    signal_started: float | None = None
    signal_last: float | None = None

    def add_beat(self, beat_time: float, label: str, latency_us: float) -> None:
        key = label if label in self.totals else "Q"
        self.totals[key] += 1
        self.window[key] += 1
        self.beat_times.append(beat_time)
        if self.signal_started is None:
            self.signal_started = beat_time
        self.signal_last = beat_time
        self.latency_sum_us += latency_us
        self.latency_max_us = max(self.latency_max_us, latency_us)
        self.latency_n += 1

    def heart_rate_bpm(self) -> float | None:
        """Median-free robust rate: beats over the span of the last up to 64 beats."""
        if len(self.beat_times) < 2:
            return None
        span = self.beat_times[-1] - self.beat_times[0]
        if span <= 0:
            return None
        return 60.0 * (len(self.beat_times) - 1) / span

    def record(
        self, extra: dict[str, Any] | None = None, *, now: float | None = None
    ) -> dict[str, Any]:
        """The flat record of the window that ends now; resets the window counters."""
        mono = time.monotonic()
        cpu = time.process_time()
        wall = mono - self.started
        # Rates per minute of *signal* time when the beats carry it (a replay at high speed
        # still reports physiological rates), else of wall time.
        span = 0.0
        if self.signal_started is not None and self.signal_last is not None:
            span = self.signal_last - self.signal_started
        minutes = (span if span > 0 else wall) / 60.0
        hr = self.heart_rate_bpm()
        rec: dict[str, Any] = {
            "ts": utc_now(now),
            "node": self.node_id,
            "hr_bpm": round(hr, 1) if hr is not None else None,
            "beats": sum(self.window.values()),
        }
        for c in _CLASSES:
            rec[f"beats_{c.lower()}"] = self.window[c]
            rate = self.window[c] / minutes if minutes > 0 else 0.0
            rec[f"{c.lower()}_per_min"] = round(rate, 2)
        for c in _CLASSES:
            rec[f"beats_{c.lower()}_total"] = self.totals[c]
        rec["inference_mean_us"] = (
            round(self.latency_sum_us / self.latency_n, 1) if self.latency_n else None
        )
        rec["inference_max_us"] = round(self.latency_max_us, 1) if self.latency_n else None
        rec["cpu_pct"] = round(100.0 * (cpu - self.cpu_started) / wall, 2) if wall > 0 else 0.0
        rec["rss_mb"] = round(rss_mb(), 2)
        rec["interval_s"] = round(wall, 3)
        if extra:
            rec.update(extra)
        self.window = dict.fromkeys(_CLASSES, 0)
        self.latency_sum_us = self.latency_max_us = 0.0
        self.latency_n = 0
        self.started, self.cpu_started = mono, cpu
        self.signal_started = self.signal_last
        return rec
