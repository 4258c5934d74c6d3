"""Canonical encodings shared by the learner state, the wire protocol and the ledger.

One encoding serves the signature, the hash and the ledger (DESIGN.md, "Wire protocol"):

* ``canonical_json``: JSON with sorted keys, no insignificant whitespace, UTF-8, no NaN.
* arrays travel as ``{"dtype": "<f8", "shape": [..], "data": base64(little-endian C-order bytes)}``.
* ``arrays_digest`` hashes a mapping of named arrays as
  ``sha256(canonical_json({name: {"dtype", "shape"}}) || raw bytes of each array in name order)``
  and is written ``sha256:<hex>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ALLOWED_DTYPES",
    "array_from_wire",
    "array_to_wire",
    "arrays_digest",
    "canonical_json",
    "le_bytes",
]

#: dtypes that may cross a trust boundary, in their little-endian wire spelling.
ALLOWED_DTYPES: frozenset[str] = frozenset({"<f8", "<f4", "<i8", "<i4", "|i1", "|u1"})


def canonical_json(obj: Any) -> bytes:
    """The one byte encoding of a JSON value: sorted keys, no spaces, UTF-8, finite numbers."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _wire_dtype(a: NDArray[Any]) -> np.dtype[Any]:
    dt = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "<") else a.dtype
    if dt.byteorder == "=":
        dt = dt.newbyteorder("<")
    return dt


def le_bytes(a: NDArray[Any]) -> bytes:
    """Little-endian, C-order bytes of ``a`` (independent of the host's byte order)."""
    dt = _wire_dtype(a)
    return np.ascontiguousarray(a, dtype=dt).tobytes(order="C")


def _dtype_str(a: NDArray[Any]) -> str:
    return _wire_dtype(a).str


def array_to_wire(a: NDArray[Any]) -> dict[str, Any]:
    """Encode one array as ``{"dtype", "shape", "data"}`` with base64 little-endian bytes."""
    return {
        "dtype": _dtype_str(a),
        "shape": [int(s) for s in a.shape],
        "data": base64.b64encode(le_bytes(a)).decode("ascii"),
    }


def array_from_wire(obj: Mapping[str, Any]) -> NDArray[Any]:
    """Decode :func:`array_to_wire` output. Raises ``ValueError`` naming what was expected."""
    dtype = obj.get("dtype")
    shape = obj.get("shape")
    data = obj.get("data")
    if dtype not in ALLOWED_DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(ALLOWED_DTYPES)}")
    if not isinstance(shape, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise ValueError(f"shape must be a list of non-negative integers, got {shape!r}")
    if not isinstance(data, str):
        raise ValueError("data must be a base64 string")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as err:
        raise ValueError(f"data is not valid base64: {err}") from err
    dt = np.dtype(dtype)
    count = 1
    for s in shape:
        count *= s
    if len(raw) != count * dt.itemsize:
        raise ValueError(
            f"data holds {len(raw)} bytes, shape {shape} of {dtype} needs {count * dt.itemsize}"
        )
    return np.frombuffer(raw, dtype=dt).reshape(shape).astype(dt.newbyteorder("="))


def arrays_digest(arrays: Mapping[str, NDArray[Any]]) -> str:
    """``sha256:<hex>`` over a canonical description of the arrays followed by their bytes."""
    names = sorted(arrays)
    header = {n: {"dtype": _dtype_str(arrays[n]), "shape": list(arrays[n].shape)} for n in names}
    h = hashlib.sha256(canonical_json(header))
    for n in names:
        h.update(le_bytes(arrays[n]))
    return "sha256:" + h.hexdigest()
