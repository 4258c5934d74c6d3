"""Rhythm alerts: runs of ventricular beats and ventricular ectopy per minute."""

from __future__ import annotations

import json

import pytest

from smfel.agent.daemon.alerts import AlertEngine
from smfel.agent.daemon.config import AlertsConfig

pytestmark = pytest.mark.device


def feed(engine: AlertEngine, labels: str, rr: float = 0.8, t0: float = 0.0) -> list[str]:
    kinds = []
    for i, label in enumerate(labels):
        kinds += [a.kind for a in engine.push(t0 + i * rr, label)]
    return kinds


def test_two_ventricular_beats_in_a_row_are_not_a_run() -> None:
    engine = AlertEngine(AlertsConfig(v_per_minute=1000))
    assert feed(engine, "NNVVNNVVN") == []
    assert engine.runs == 0


def test_a_run_of_three_alerts_once_and_again_when_it_ends() -> None:
    engine = AlertEngine(AlertsConfig(v_per_minute=1000))
    assert feed(engine, "NNVVVVVNN") == ["v_run", "v_run_end"]
    assert engine.runs == 1
    assert engine.longest_run == 5


def test_run_alert_carries_counts_and_times_only() -> None:
    engine = AlertEngine(AlertsConfig(v_per_minute=1000))
    alerts = [a for i, lab in enumerate("NVVVN") for a in engine.push(10.0 + i, lab)]
    start, end = alerts
    assert start.to_dict()["run_beats"] == 3
    assert start.to_dict()["run_start_s"] == 11.0
    assert end.to_dict()["run_beats"] == 3
    assert end.to_dict()["run_duration_s"] == 3.0
    json.dumps(start.to_dict())  # plain JSON


def test_rate_alert_over_the_window_with_cooldown() -> None:
    cfg = AlertsConfig(v_per_minute=6.0, window=60.0, cooldown=30.0, v_run=3)
    engine = AlertEngine(cfg)
    # Isolated V beats (bigeminy-like: N V N V ...) at 1 s spacing: the rate passes 6/min at
    # the seventh V beat, then the cooldown holds the next alert back for 30 s of signal.
    kinds = feed(engine, "NV" * 30, rr=1.0)
    assert kinds.count("v_rate") == 2
    assert "v_run" not in kinds
    assert engine.v_per_minute(59.0) == pytest.approx(30.0)
    # Sixty seconds of normal rhythm empty the window.
    feed(engine, "N" * 61, rr=1.0, t0=60.0)
    assert engine.v_per_minute(121.0) == 0.0
