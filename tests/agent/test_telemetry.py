"""Flat telemetry records and Home Assistant discovery: units in key names, no raw ECG."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from smfel.agent.daemon.hass import discovery_messages
from smfel.agent.daemon.telemetry import TelemetryWindow, utc_now

pytestmark = pytest.mark.device


def test_record_is_flat_json_with_units_and_ts() -> None:
    w = TelemetryWindow("n1")
    for i in range(61):
        w.add_beat(i * 1.0, "V" if i % 10 == 0 else "N", latency_us=20.0 + i)
    rec = w.record({"model_round": 3, "state": "running"}, now=0.0)
    assert rec["ts"] == "1970-01-01T00:00:00.000Z"
    assert all(not isinstance(v, dict | list) for v in rec.values())
    assert rec["hr_bpm"] == pytest.approx(60.0)
    assert rec["beats"] == 61
    assert rec["beats_v"] == 7
    assert rec["v_per_min"] == pytest.approx(7.0)
    assert rec["n_per_min"] == pytest.approx(54.0)
    assert rec["inference_max_us"] == 80.0
    assert rec["model_round"] == 3
    assert rec["rss_mb"] > 1
    json.loads(json.dumps(rec, allow_nan=False))
    # The next window starts empty but keeps the totals.
    nxt = w.record()
    assert nxt["beats"] == 0
    assert nxt["beats_v_total"] == 7
    assert nxt["inference_mean_us"] is None


def test_utc_now_is_rfc3339() -> None:
    parsed = dt.datetime.fromisoformat(utc_now())
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == dt.timedelta(0)


def test_home_assistant_discovery_reads_telemetry_keys() -> None:
    w = TelemetryWindow("n1")
    w.add_beat(0.0, "N", 1.0)
    w.add_beat(1.0, "N", 1.0)
    rec = w.record({"model_round": 1, "state": "running"})
    msgs = discovery_messages(
        "ward-3.bed1",
        telemetry_topic="smfel/v1/nodes/ward-3.bed1/telemetry",
        status_topic="smfel/v1/nodes/ward-3.bed1/status",
    )
    names = set()
    for topic, payload in msgs:
        assert topic.startswith("homeassistant/sensor/smfel_ward_3_bed1_")
        assert topic.endswith("/config")
        key = payload["value_template"].split("value_json.")[1].split()[0]
        assert key in rec, key
        names.add(key)
    assert {
        "hr_bpm",
        "n_per_min",
        "s_per_min",
        "v_per_min",
        "f_per_min",
        "model_round",
        "state",
    } <= names
