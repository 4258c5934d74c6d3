"""Rhythm alerts from the stream of classified beats.

Two rules, both on the beats' own clock (seconds of signal), so a replay at any speed raises the
same alerts as the live stream:

* a run of ``v_run`` or more consecutive ventricular beats (three or more is ventricular
  tachycardia by the usual clinical definition, e.g. the AHA/ACC/HRS 2017 ventricular arrhythmia
  guideline's "non-sustained VT": three or more consecutive ventricular beats); one alert when the
  run reaches the threshold, and one more when it ends, with its length;
* ventricular ectopy above ``v_per_minute`` over a sliding ``window``, at most once per
  ``cooldown`` seconds.

An alert carries counts and times only (never samples), so it may leave the device.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from smfel.agent.daemon.config import AlertsConfig

__all__ = ["Alert", "AlertEngine"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: ``kind`` (``v_run``, ``v_run_end``, ``v_rate``), its signal time and evidence."""

    kind: str
    beat_time: float
    severity: str
    message: str
    evidence: tuple[tuple[str, float | int], ...]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
            "beat_time_s": round(self.beat_time, 3),
        }
        out.update(self.evidence)
        return out


class AlertEngine:
    """Feed it every classified beat with :meth:`push`; it returns the alerts that beat raised."""

    def __init__(self, config: AlertsConfig) -> None:
        self.config = config
        self.run_length = 0
        self.run_start = 0.0
        self.runs = 0
        self.longest_run = 0
        self._v_times: deque[float] = deque()
        self._last_rate_alert = float("-inf")

    def reconfigure(self, config: AlertsConfig) -> None:
        self.config = config

    def v_per_minute(self, now: float) -> float:
        """Ventricular beats per minute over the window ending at signal time ``now``."""
        self._expire(now)
        return len(self._v_times) * 60.0 / self.config.window

    def _expire(self, now: float) -> None:
        horizon = now - self.config.window
        while self._v_times and self._v_times[0] < horizon:
            self._v_times.popleft()

    def push(self, beat_time: float, label: str) -> list[Alert]:
        cfg = self.config
        out: list[Alert] = []
        if label == "V":
            if self.run_length == 0:
                self.run_start = beat_time
            self.run_length += 1
            if self.run_length == cfg.v_run:
                self.runs += 1
                out.append(
                    Alert(
                        "v_run",
                        beat_time,
                        "critical",
                        f"run of {self.run_length} ventricular beats",
                        (("run_beats", self.run_length), ("run_start_s", round(self.run_start, 3))),
                    )
                )
            self._v_times.append(beat_time)
        else:
            if self.run_length >= cfg.v_run:
                duration = beat_time - self.run_start
                out.append(
                    Alert(
                        "v_run_end",
                        beat_time,
                        "warning",
                        f"ventricular run ended after {self.run_length} beats",
                        (
                            ("run_beats", self.run_length),
                            ("run_start_s", round(self.run_start, 3)),
                            ("run_duration_s", round(duration, 3)),
                        ),
                    )
                )
            self.longest_run = max(self.longest_run, self.run_length)
            self.run_length = 0
        rate = self.v_per_minute(beat_time)
        if (
            label == "V"
            and rate > cfg.v_per_minute
            and beat_time - self._last_rate_alert >= cfg.cooldown
        ):
            self._last_rate_alert = beat_time
            out.append(
                Alert(
                    "v_rate",
                    beat_time,
                    "warning",
                    f"{rate:.1f} ventricular beats per minute (threshold {cfg.v_per_minute:g})",
                    (
                        ("v_per_min", round(rate, 2)),
                        ("threshold_per_min", cfg.v_per_minute),
                        ("window_s", cfg.window),
                    ),
                )
            )
        return out
