"""Learner state files: versioned, hashed, written atomically.

Layout (all integers little-endian)::

    b"SMFELST\\x01"  | u32 header length | header (canonical JSON) | array payload | SHA-256

The header names the schema, the learner's parameters (the hidden layer included, so a state
file is self-contained) and, for each array, its dtype, shape, offset and length in the payload.
The trailing SHA-256 covers every byte before it, so a truncated or altered file is refused
before anything in it is used. A file is written to a temporary name in the same directory,
fsynced, renamed over the old one and the directory fsynced, so a crash leaves either the old or
the new state, never a mixture.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent.codec import canonical_json, le_view
from smfel.agent.errors import StateFileError
from smfel.agent.hidden import HiddenLayer
from smfel.agent.learner import OSELM

__all__ = [
    "SCHEMA",
    "Buffer",
    "atomic_write",
    "decode_state",
    "encode_parts",
    "load_state",
    "save_state",
]

MAGIC = b"SMFELST\x01"
SCHEMA = "smfel.learner-state/1"
_DIGEST = 32
_ARRAYS = ("W", "b", "class_weight", "beta", "P", "U", "V", "class_counts")


Buffer = bytes | bytearray | memoryview


def atomic_write(
    path: str | os.PathLike[str], data: Buffer | Sequence[Buffer], mode: int = 0o600
) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part.
    ``data`` may be a sequence of buffers, written one after the other, so a file made of large
    arrays is never joined into one more copy in memory."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    parts = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    try:
        with os.fdopen(fd, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(p.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def encode_parts(learner: OSELM) -> list[Buffer]:
    """The state file of ``learner`` as a list of buffers whose concatenation is the file (the
    arrays are views of the learner's own memory, not copies; the last part is the SHA-256)."""
    if not learner.is_fitted:
        learner._init_state()
    arrays: dict[str, NDArray[Any]] = {
        "W": learner.hidden.W,
        "b": learner.hidden.b,
        "class_weight": learner.class_weight_,
        "beta": learner.beta_,
        "P": learner.P_,
        "U": learner.U_,
        "V": learner.V_,
        "class_counts": learner.class_counts_,
    }
    entries = []
    chunks: list[Buffer] = []
    offset = 0
    for name in _ARRAYS:
        raw = le_view(arrays[name])
        entries.append(
            {
                "name": name,
                "dtype": np.dtype(arrays[name].dtype).newbyteorder("<").str,
                "shape": list(arrays[name].shape),
                "offset": offset,
                "nbytes": len(raw),
            }
        )
        chunks.append(raw)
        offset += len(raw)
    header = {
        "schema": SCHEMA,
        "params": {
            "activation": learner.hidden.activation,
            "hidden_hash": learner.hidden.content_hash,
            "classes": list(learner.classes),
            "C": learner.C,
            "forgetting": learner.forgetting,
            "max_trace": learner.max_trace,
            "resolve_every": learner.resolve_every,
            "class_weight_given": learner.class_weight is not None,
        },
        "counters": {
            "n_seen": int(learner.n_seen_),
            "since_resolve": int(learner.since_resolve_),
            "trace_limit": learner.trace_limit_,
        },
        "arrays": entries,
    }
    hb = canonical_json(header)
    parts: list[Buffer] = [MAGIC + struct.pack("<I", len(hb)) + hb, *chunks]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    parts.append(digest.digest())
    return parts


def save_state(learner: OSELM, path: str | os.PathLike[str]) -> None:
    """Write the learner's parameters and learned state to ``path`` atomically."""
    atomic_write(path, encode_parts(learner))


def _fail(path: str, reason: str) -> StateFileError:
    return StateFileError(path, reason)


def load_state(path: str | os.PathLike[str]) -> OSELM:
    """Read a state file written by :func:`save_state`; refuse anything damaged or foreign."""
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise _fail(name, f"cannot read: {err.strerror}") from err
    return decode_state(data, name)


def decode_state(data: bytes | memoryview, name: str = "<bytes>") -> OSELM:
    """Decode the bytes of a state file (see :func:`load_state`); ``data`` may be a view into
    a larger buffer (nothing is copied)."""
    data = memoryview(data).cast("B")
    minimum = len(MAGIC) + 4 + _DIGEST
    if len(data) < minimum:
        raise _fail(name, f"truncated: {len(data)} bytes, a state file has at least {minimum}")
    if data[: len(MAGIC)] != MAGIC:
        raise _fail(name, "not a smfel learner state file (bad magic bytes)")
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(body).digest() != digest:
        raise _fail(name, "checksum mismatch: the file is truncated or was altered")
    (hlen,) = struct.unpack_from("<I", body, len(MAGIC))
    start = len(MAGIC) + 4
    if start + hlen > len(body):
        raise _fail(name, "header length points past the end of the file")
    try:
        header = json.loads(bytes(body[start : start + hlen]))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(name, f"header is not valid JSON: {err}") from err
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        got = header.get("schema") if isinstance(header, dict) else None
        raise _fail(name, f"unsupported schema {got!r}; this version reads {SCHEMA!r}")
    payload = body[start + hlen :]
    try:
        arrays = _read_arrays(header["arrays"], payload)
        params = header["params"]
        counters = header["counters"]
        # The arrays are read-only views of ``data``: those the learner keeps are copied.
        hidden = HiddenLayer(arrays["W"].copy(), arrays["b"].copy(), params["activation"])
        if hidden.content_hash != params["hidden_hash"]:
            raise ValueError("hidden layer does not match its recorded hash")
        learner = OSELM(
            hidden,
            params["classes"],
            C=float(params["C"]),
            class_weight=arrays["class_weight"].copy() if params["class_weight_given"] else None,
            forgetting=float(params["forgetting"]),
            max_trace=params["max_trace"],
            resolve_every=int(params["resolve_every"]),
        )
        learner._init_state()
        L, K = learner.n_hidden, learner.n_classes
        expect = {"beta": (L, K), "P": (L, L), "U": (L, L), "V": (L, K), "class_counts": (K,)}
        for key, shape in expect.items():
            if arrays[key].shape != shape:
                raise ValueError(f"array {key} has shape {arrays[key].shape}, expected {shape}")
        learner.class_weight_[...] = arrays["class_weight"]
        learner.beta_[...] = arrays["beta"]
        learner.P_[...] = arrays["P"]
        learner.U_[...] = arrays["U"]
        learner.V_[...] = arrays["V"]
        learner.class_counts_[...] = arrays["class_counts"]
        learner.n_seen_ = int(counters["n_seen"])
        learner.since_resolve_ = int(counters["since_resolve"])
        learner.trace_limit_ = float(counters["trace_limit"])
    except (KeyError, TypeError, ValueError) as err:
        raise _fail(name, f"inconsistent content: {err}") from err
    return learner


def _read_arrays(
    entries: list[dict[str, Any]], payload: bytes | memoryview
) -> dict[str, NDArray[Any]]:
    out: dict[str, NDArray[Any]] = {}
    for e in entries:
        dt = np.dtype(e["dtype"])
        if dt.str not in ("<f8", "<i8"):
            raise ValueError(f"array {e['name']} has dtype {dt.str}, expected <f8 or <i8")
        shape = tuple(int(s) for s in e["shape"])
        off, nb = int(e["offset"]), int(e["nbytes"])
        if off < 0 or off + nb > len(payload) or nb != int(np.prod(shape)) * dt.itemsize:
            raise ValueError(f"array {e['name']} does not fit the payload")
        out[e["name"]] = (
            np.frombuffer(payload, dtype=dt, count=nb // dt.itemsize, offset=off)
            .reshape(shape)
            .astype(dt.newbyteorder("="), copy=False)
        )
    missing = set(_ARRAYS) - set(out)
    if missing:
        raise ValueError(f"arrays missing: {sorted(missing)}")
    return out
