"""Whole MIT-BIH records: QRS acceptance on DS1, load_record_beats, and the two commands."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from smfel.sensors import DS1, N_FEATURES, BeatExtractor, load_record_beats, open_source
from smfel.sim.qrs import qrs_evaluation

pytestmark = pytest.mark.mitdb


@pytest.mark.slow
def test_qrs_detector_on_ds1_meets_the_acceptance_figures(mitdb: Path) -> None:
    res = qrs_evaluation(mitdb, DS1)
    total = res["total"]
    assert total["tp"] + total["fn"] == 51021  # every DS1 beat (none inside 207's flutter)
    assert total["se"] >= 0.995
    assert total["ppv"] >= 0.995
    assert all(v["se"] >= 0.98 for v in res["records"].values())


def test_annotated_beats_of_a_record(mitdb: Path) -> None:
    rb = load_record_beats(mitdb, "119", beats="annotated")
    # 1543 N and 444 V in record 119; the first beat has no previous RR interval.
    assert Counter(rb.labels.tolist()) == {"N": 1542, "V": 444}
    assert rb.X.shape == (1986, N_FEATURES) and np.isfinite(rb.X).all()
    assert rb.missed == 0 and rb.extra == 0
    X, y = rb.select(("N", "S", "V", "F"))
    assert X.shape[0] == len(y) == 1986 and set(y.tolist()) == {0, 2}


def test_detected_beats_count_missed_and_extra(mitdb: Path) -> None:
    rb = load_record_beats(mitdb, "203", beats="detected")
    ann = load_record_beats(mitdb, "203", beats="annotated")
    assert rb.missed > 0 and rb.extra > 0
    # Every reference beat but the first (never emitted) is either kept (matched) or missed.
    assert len(rb) + rb.missed == len(ann)


def test_load_record_beats_equals_the_streaming_device_path(mitdb: Path) -> None:
    # What the evaluation measures is what a device computes from the same samples.
    rb = load_record_beats(mitdb, "124", beats="detected")
    ex = BeatExtractor()
    beats = []
    with open_source(f"wfdb://{mitdb}/124?speed=0&chunk=0.25") as src:
        for chunk in src:
            beats += ex.push(chunk)
    beats += ex.flush()
    kept = [b for b in beats if b.label is not None]
    assert np.array_equal(np.array([b.features for b in kept]), rb.X)
    assert [b.label for b in kept] == rb.labels.tolist()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smfel.sim.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_qrs_command(mitdb: Path, tmp_path: Path) -> None:
    out = tmp_path / "qrs.json"
    res = _cli("qrs", "--data", str(mitdb), "--records", "101,207", "--json", str(out))
    assert res.returncode == 0, res.stderr
    assert "total" in res.stdout and "207" in res.stdout
    doc = json.loads(out.read_text())
    assert set(doc) == {"records", "total"}
    assert set(doc["records"]) == {"101", "207"}
    for v in [*doc["records"].values(), doc["total"]]:
        assert set(v) == {"se", "ppv", "tp", "fp", "fn"}
    assert doc["total"]["tp"] == doc["records"]["101"]["tp"] + doc["records"]["207"]["tp"]


def test_evaluate_command_end_to_end(mitdb: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    res = _cli(
        "evaluate", "--data", str(mitdb), "--train", "106,118,208",
        "--test", "119,209", "--beats", "detected", "--json", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "j-index" in res.stdout and "Q beats are excluded" in res.stdout
    doc = json.loads(out.read_text())
    assert doc["train"] == ["106", "118", "208"] and doc["test"] == ["119", "209"]
    assert doc["beats"] == "detected"
    assert list(doc["classes"]) == ["N", "S", "V", "F"]
    assert all(set(c) == {"se", "ppv"} for c in doc["classes"].values())
    cm = np.array(doc["confusion"])
    assert cm.shape == (4, 4)
    assert cm.sum() == 1987 + 3005 - 2 - doc["missed"]  # test beats, less first beats and misses
    assert cm[2].sum() <= 444 + 1  # V beats of 119 and 209
    assert 0.0 <= doc["j_index"] <= 1.0 and doc["train_seconds"] > 0
    # Ventricular beats of a patient never seen are mostly recognised.
    assert doc["classes"]["V"]["se"] > 0.5


def test_evaluate_names_missing_records(mitdb: Path) -> None:
    res = _cli("evaluate", "--data", str(mitdb))  # DS2 is not in the folder
    assert res.returncode != 0
    assert "records not found: 100, 103" in res.stderr


def test_evaluate_cv_with_several_seeds(mitdb: Path, tmp_path: Path) -> None:
    out = tmp_path / "cv.json"
    res = _cli(
        "evaluate", "--data", str(mitdb), "--train", "101,106,119", "--cv",
        "--beats", "annotated", "--hidden", "20", "--seed", "3", "--seeds", "2",
        "--json", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "mean of 2 hidden-layer seeds" in res.stdout
    doc = json.loads(out.read_text())
    assert doc["seed"] == 3
    assert [r["seed"] for r in doc["seeds"]["runs"]] == [3, 4]
    bad = _cli("evaluate", "--data", str(mitdb), "--train", "101,106", "--cv", "--seeds", "0")
    assert bad.returncode != 0 and "--seeds must be at least 1, got 0" in bad.stderr
