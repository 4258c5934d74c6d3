"""State files: damaged, truncated or foreign files are refused with a clear error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smfel.agent import OSELM, HiddenLayer, StateFileError, load_state, save_state
from smfel.agent.state import MAGIC

pytestmark = pytest.mark.device


def _saved(tmp_path: Path) -> tuple[Path, bytes]:
    rng = np.random.default_rng(0)
    learner = OSELM(HiddenLayer.generate(4, 8, seed=1), ("N", "S", "V", "F"))
    learner.learn_many(rng.normal(size=(30, 4)), rng.integers(0, 4, size=30))
    path = tmp_path / "s.state"
    save_state(learner, path)
    return path, path.read_bytes()


def test_file_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    path, data = _saved(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert data.startswith(MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["s.state"]  # no temporary left behind


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_changed_byte_is_refused(tmp_path: Path, data: st.DataObject) -> None:
    path, raw = _saved(tmp_path)
    i = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(raw)
    bad[i] ^= 1 << bit
    path.write_bytes(bytes(bad))
    with pytest.raises(StateFileError) as info:
        load_state(path)
    assert info.value.path == str(path)
    assert "magic" in info.value.reason or "checksum mismatch" in info.value.reason


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_truncation_is_refused(tmp_path: Path, data: st.DataObject) -> None:
    path, raw = _saved(tmp_path)
    n = data.draw(st.integers(0, len(raw) - 1))
    path.write_bytes(raw[:n])
    with pytest.raises(StateFileError, match=r"truncated|checksum mismatch|magic"):
        load_state(path)


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="cannot read"):
        load_state(tmp_path / "nope")
    other = tmp_path / "other"
    other.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(StateFileError, match="not a smfel learner state file"):
        load_state(other)


def test_well_formed_but_inconsistent_content_is_refused(tmp_path: Path) -> None:
    """A file with a valid checksum but a hidden layer that does not match its hash."""
    import hashlib
    import json
    import struct

    path, raw = _saved(tmp_path)
    body = raw[:-32]
    (hlen,) = struct.unpack_from("<I", body, len(MAGIC))
    start = len(MAGIC) + 4
    header = json.loads(body[start : start + hlen])
    header["params"]["hidden_hash"] = "sha256:" + "0" * 64 + ":sigmoid"
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    new = MAGIC + struct.pack("<I", len(hb)) + hb + body[start + hlen :]
    path.write_bytes(new + hashlib.sha256(new).digest())
    with pytest.raises(StateFileError, match="hidden layer does not match"):
        load_state(path)
    header["schema"] = "smfel.learner-state/99"
    hb = json.dumps(header).encode()
    new = MAGIC + struct.pack("<I", len(hb)) + hb + body[start + hlen :]
    path.write_bytes(new + hashlib.sha256(new).digest())
    with pytest.raises(StateFileError, match="unsupported schema"):
        load_state(path)
