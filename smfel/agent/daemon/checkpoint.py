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
from smfel.agent.state import Buffer, atomic_write, decode_state
from smfel.agent.state import encode_parts as encode_learner

__all__ = [
    "CHECKPOINT_FILE",
    "Checkpoint",
    "decode_checkpoint",
    "encode_parts",
    "read_checkpoint",
    "write_checkpoint",
]

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


def encode_parts(ckpt: Checkpoint) -> list[Buffer]:
    """The checkpoint file as a list of buffers whose concatenation is the file: the learner's
    arrays are views of its own memory, so writing a checkpoint adds little more than the
    snapshot's copy to the process's peak memory (joining the parts would double it)."""
    state = encode_learner(ckpt.learner)
    buf = io.BytesIO()
    if ckpt.snapshot is not None:
        s = ckpt.snapshot
        np.savez(buf, U=s.U, V=s.V, n=np.int64(s.n), class_counts=s.class_counts)
    meta = canonical_json(
        {"schema": SCHEMA, "has_snapshot": ckpt.snapshot is not None, **ckpt.meta}
    )
    state_length = sum(memoryview(part).nbytes for part in state)
    parts: list[Buffer] = [
        MAGIC + struct.pack("<I", len(meta)) + meta + struct.pack("<Q", state_length),
        *state,
        buf.getbuffer(),
    ]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    parts.append(digest.digest())
    return parts


def write_checkpoint(path: str | Path, ckpt: Checkpoint) -> int:
    """Write ``ckpt`` atomically; returns the number of bytes written."""
    parts = encode_parts(ckpt)
    atomic_write(path, parts, 0o600)
    return sum(memoryview(part).nbytes for part in parts)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint; :class:`StateFileError` if it is missing, damaged or foreign."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise StateFileError(name, f"cannot read: {err.strerror}") from err
    return decode_checkpoint(data, name)


def decode_checkpoint(data: bytes, name: str = "<bytes>") -> Checkpoint:
    """Decode the bytes of a checkpoint (see :func:`read_checkpoint`); the learner's part is
    read through views, without copies."""
    if len(data) < len(MAGIC) + 12 + _DIGEST or not data.startswith(MAGIC):
        raise StateFileError(name, "not a smfel agent checkpoint (bad magic bytes or too short)")
    view = memoryview(data)
    body, digest = view[:-_DIGEST], view[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise StateFileError(name, "checksum mismatch: the file is truncated or was altered")
    try:
        pos = len(MAGIC)
        (mlen,) = struct.unpack_from("<I", body, pos)
        pos += 4
        meta = json.loads(bytes(body[pos : pos + mlen]))
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
