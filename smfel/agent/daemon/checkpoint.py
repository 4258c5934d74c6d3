"""The agent's checkpoint: learner state, round bookkeeping and the round snapshot, in one file.

The learner and the statistics snapshot taken when the last update was sent must be saved
together: restoring one without the other would count beats twice (or never) in the next
``stats`` update. One file holds both, written atomically (temporary file, fsync, rename, fsync
of the directory; see :func:`smfel.agent.state.atomic_write`), so a crash at any instant leaves
the previous checkpoint or the new one. Layout (little-endian)::

    b"SMFELCK\\x01" | u32 meta length | meta (canonical JSON) | u64 state length
    | learner state file bytes (smfel.agent.state) | snapshot arrays (.npz) | SHA-256 of all before
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smfel.agent.codec import canonical_json
from smfel.agent.errors import StateFileError
from smfel.agent.learner import OSELM, SufficientStatistics
from smfel.agent.state import _encode as encode_learner
from smfel.agent.state import atomic_write, decode_state

__all__ = ["CHECKPOINT_FILE", "Checkpoint", "read_checkpoint", "write_checkpoint"]

MAGIC = b"SMFELCK\x01"
SCHEMA = "smfel.agent-checkpoint/1"
CHECKPOINT_FILE = "agent.ckpt"
_DIGEST = 32


@dataclass(slots=True)
class Checkpoint:
    """What survives a restart. ``snapshot`` is the learner's statistics when the last update
    was built (None before the first); ``meta`` holds counters (rounds, beats, model hash)."""

    learner: OSELM
    snapshot: SufficientStatistics | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _encode(ckpt: Checkpoint) -> bytes:
    state = encode_learner(ckpt.learner)
    buf = io.BytesIO()
    if ckpt.snapshot is not None:
        s = ckpt.snapshot
        np.savez(buf, U=s.U, V=s.V, n=np.int64(s.n), class_counts=s.class_counts)
    meta = canonical_json(
        {"schema": SCHEMA, "has_snapshot": ckpt.snapshot is not None, **ckpt.meta}
    )
    body = b"".join(
        [
            MAGIC,
            struct.pack("<I", len(meta)),
            meta,
            struct.pack("<Q", len(state)),
            state,
            buf.getvalue(),
        ]
    )
    return body + hashlib.sha256(body).digest()


def write_checkpoint(path: str | Path, ckpt: Checkpoint) -> int:
    """Write ``ckpt`` atomically; returns the number of bytes written."""
    data = _encode(ckpt)
    atomic_write(path, data, 0o600)
    return len(data)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint; :class:`StateFileError` if it is missing, damaged or foreign."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise StateFileError(name, f"cannot read: {err.strerror}") from err
    if len(data) < len(MAGIC) + 12 + _DIGEST or not data.startswith(MAGIC):
        raise StateFileError(name, "not a smfel agent checkpoint (bad magic bytes or too short)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise StateFileError(name, "checksum mismatch: the file is truncated or was altered")
    try:
        pos = len(MAGIC)
        (mlen,) = struct.unpack_from("<I", body, pos)
        pos += 4
        meta = json.loads(body[pos : pos + mlen])
        pos += mlen
        (slen,) = struct.unpack_from("<Q", body, pos)
        pos += 8
        if meta.get("schema") != SCHEMA:
            raise ValueError(f"schema {meta.get('schema')!r}, expected {SCHEMA!r}")
        learner = decode_state(body[pos : pos + slen], name)
        pos += slen
        snapshot = None
        if meta.pop("has_snapshot", False):
            with np.load(io.BytesIO(body[pos:]), allow_pickle=False) as z:
                snapshot = SufficientStatistics(
                    np.array(z["U"], dtype=np.float64),
                    np.array(z["V"], dtype=np.float64),
                    int(z["n"]),
                    np.array(z["class_counts"], dtype=np.int64),
                )
            L, K = learner.n_hidden, learner.n_classes
            if snapshot.U.shape != (L, L) or snapshot.V.shape != (L, K):
                raise ValueError("snapshot dimensions differ from the learner's")
    except (struct.error, ValueError, KeyError, OSError) as err:
        raise StateFileError(name, f"inconsistent content: {err}") from err
    meta.pop("schema", None)
    return Checkpoint(learner, snapshot, meta)
