"""Whole-system runs: nodes running the agent's code, a real Mosquitto, the real aggregator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smfel.sim.report import format_header, format_row
from smfel.sim.run import (
    mitdb_fleet,
    mitdb_test,
    run_fleet,
    synthetic_fleet,
    synthetic_test,
)

pytestmark = pytest.mark.broker

MITDB = Path(
    os.environ.get("SMFEL_MITDB", Path(__file__).resolve().parents[2] / "../shared/data/mitdb")
)


def _check_rows(res: dict[str, object], rounds: int, nodes: int) -> None:
    rows = res["rounds"]
    assert isinstance(rows, list)
    assert [r["round"] for r in rows] == list(range(1, rounds + 1))
    for r in rows:
        assert r["accepted"] == nodes
        assert r["rejected"] == 0
        assert set(r["classes"]) == {"N", "S", "V", "F"}
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["seconds"] >= 0


@pytest.mark.parametrize("driver", ["agent", "node"])
def test_exact_on_synthetic_nodes_equals_the_centralised_fit(driver: str) -> None:
    spec = synthetic_fleet(3, 2, 75.0, strategy="exact", n_hidden=48, seed=3, driver=driver)
    test = synthetic_test(60.0, seed=7)
    seen: list[dict[str, object]] = []
    res = run_fleet(spec, test, progress=seen.append)
    _check_rows(res, 2, 3)
    assert seen == res["rounds"]
    assert res["exact_max_delta"] <= 1e-8
    last = res["rounds"][-1]
    assert res["centralised"]["accuracy"] == last["accuracy"]
    assert res["centralised"]["classes"] == last["classes"]
    # the table prints every row
    assert format_row(last).split()[0] == "2"
    assert "j-idx" in format_header()


@pytest.mark.parametrize("driver", ["agent", "node"])
def test_fedavg_runs_round_by_round(driver: str) -> None:
    spec = synthetic_fleet(3, 2, 75.0, strategy="fedavg", n_hidden=48, seed=3, driver=driver)
    res = run_fleet(spec, synthetic_test(60.0, seed=7))
    _check_rows(res, 2, 3)
    assert "exact_max_delta" not in res
    assert res["strategy"] == "fedavg"


@pytest.mark.mitdb
@pytest.mark.slow
def test_exact_on_mitdb_records_equals_the_centralised_fit() -> None:
    if not MITDB.is_dir():
        pytest.fail(f"MIT-BIH records not found at {MITDB} (set SMFEL_MITDB)")
    nodes = ["106", "119", "208"]
    spec = mitdb_fleet(MITDB, nodes, 2, max_seconds=240.0, strategy="exact", n_hidden=96)
    test = mitdb_test(MITDB, ["201"])
    res = run_fleet(spec, test)
    _check_rows(res, 2, 3)
    assert res["exact_max_delta"] <= 1e-8
    assert res["centralised"]["accuracy"] == res["rounds"][-1]["accuracy"]
    assert res["centralised"]["j_index"] == res["rounds"][-1]["j_index"]
    assert res["test_beats"] > 1000


def test_cli_run_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "smfel-sim"),
            "--log-level",
            "WARNING",
            "run",
            "--nodes",
            "a,b",
            "--rounds",
            "2",
            "--hidden",
            "32",
            "--strategy",
            "fedavg",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "round acc%" in proc.stdout
    data = json.loads(out.read_text())
    assert data["strategy"] == "fedavg"
    assert len(data["rounds"]) == 2
    assert {"round", "accuracy", "j_index", "classes", "accepted", "rejected", "seconds"} <= set(
        data["rounds"][0]
    )
    assert np.isfinite(data["rounds"][-1]["accuracy"])
