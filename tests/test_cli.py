"""The three commands exist, answer --help and --version, and fail clearly on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smfel import __version__
from smfel.agent import OSELM, HiddenLayer, save_state

COMMANDS = ["smfel-agent", "smfel-aggregator", "smfel-sim"]


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@pytest.mark.parametrize("command", COMMANDS)
def test_version_and_help(command: str) -> None:
    out = subprocess.run([_bin(command), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"{command} {__version__}"
    out = subprocess.run([_bin(command), "--help"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith(f"usage: {command}")


def test_unknown_option_is_a_usage_error() -> None:
    out = subprocess.run([_bin("smfel-sim"), "--frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unrecognized arguments: --frobnicate" in out.stderr


def test_state_info_reads_a_state_file_and_refuses_a_damaged_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    learner = OSELM(HiddenLayer.generate(4, 8, seed=1), ("N", "S", "V", "F"))
    learner.learn_many(rng.normal(size=(10, 4)), np.array([0, 1, 2, 3, 0, 0, 0, 1, 2, 0]))
    path = tmp_path / "a.state"
    save_state(learner, path)
    out = subprocess.run(
        [_bin("smfel-agent"), "state-info", str(path)], capture_output=True, text=True, check=True
    )
    assert '"beats_learned": 10' in out.stdout
    assert '"N": 5' in out.stdout
    path.write_bytes(path.read_bytes()[:-1])
    out = subprocess.run(
        [_bin("smfel-agent"), "state-info", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 65
    assert "checksum mismatch" in out.stderr
