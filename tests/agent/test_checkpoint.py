"""The agent checkpoint: learner and round snapshot saved together, damage refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smfel.agent.daemon.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from smfel.agent.errors import StateFileError
from smfel.agent.hidden import HiddenLayer
from smfel.agent.learner import OSELM

pytestmark = pytest.mark.device


def trained(n: int = 40) -> OSELM:
    rng = np.random.default_rng(3)
    learner = OSELM(HiddenLayer.generate(6, 16, seed=1), C=10.0)
    learner.learn_many(rng.normal(size=(n, 6)), rng.integers(0, 4, size=n))
    return learner


def test_round_trip_keeps_learner_snapshot_and_meta(tmp_path: Path) -> None:
    learner = trained()
    snap = learner.statistics()
    learner.learn_many(np.ones((5, 6)), np.zeros(5, dtype=int))
    path = tmp_path / "agent.ckpt"
    write_checkpoint(path, Checkpoint(learner, snap, {"answered_round": 4, "model": "sha256:x"}))
    back = read_checkpoint(path)
    assert back.meta == {"answered_round": 4, "model": "sha256:x"}
    np.testing.assert_array_equal(back.learner.beta_, learner.beta_)
    assert back.learner.n_seen_ == 45
    assert back.snapshot is not None
    np.testing.assert_array_equal(back.snapshot.U, snap.U)
    assert back.snapshot.n == 40
    delta = back.learner.statistics() - back.snapshot
    assert delta.n == 5
    assert path.stat().st_mode & 0o777 == 0o600


def test_without_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "agent.ckpt"
    write_checkpoint(path, Checkpoint(trained()))
    assert read_checkpoint(path).snapshot is None


def test_damaged_or_foreign_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.ckpt"
    write_checkpoint(path, Checkpoint(trained(), trained().statistics()))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(StateFileError, match="checksum"):
        read_checkpoint(path)
    path.write_bytes(b"hello")
    with pytest.raises(StateFileError, match="magic"):
        read_checkpoint(path)
    with pytest.raises(StateFileError, match="cannot read"):
        read_checkpoint(tmp_path / "none")


def test_writing_a_checkpoint_does_not_copy_the_learner_state(tmp_path: Path) -> None:
    # P and U at L = 256 are 512 KiB each. The file is written part by part, so a checkpoint
    # allocates one C-order copy of P and U (they are kept in Fortran order) and the snapshot's
    # .npz: about 1.3x the file. Joining the parts into one buffer, then adding the digest, took
    # 3.2x the file (5.1 MB for a 1.6 MB file).
    import tracemalloc

    rng = np.random.default_rng(5)
    learner = OSELM(HiddenLayer.generate(6, 256, seed=1), C=10.0)
    learner.learn_many(rng.normal(size=(300, 6)), rng.integers(0, 4, size=300))
    ckpt = Checkpoint(learner, learner.statistics(), {"answered_round": 1})
    path = tmp_path / "agent.ckpt"
    assert learner.P_.size and learner.U_.size  # apply held-back corrections first
    tracemalloc.start()
    try:
        size = write_checkpoint(path, ckpt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    state = learner.P_.nbytes + learner.U_.nbytes
    assert size == path.stat().st_size > state
    assert peak < 1.6 * size, (peak, size)
    back = read_checkpoint(path)
    np.testing.assert_array_equal(np.triu(back.learner.P_), np.triu(learner.P_))
    np.testing.assert_array_equal(np.triu(back.learner.U_), np.triu(learner.U_))
