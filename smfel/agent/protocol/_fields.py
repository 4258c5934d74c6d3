"""Field formats of the envelopes and the strict readers for each (internal).

Every reader takes the decoded JSON object and a field name and either returns a typed value or
raises :class:`Rejected` with ``malformed`` (or ``oversize``/``bad_shape`` for arrays), naming
the field and what was expected.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent.codec import ALLOWED_DTYPES, array_to_wire, b64decode_strict
from smfel.agent.protocol.limits import Limits
from smfel.agent.protocol.reasons import Reason, Rejected

NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TOKEN = re.compile(r"[a-z][a-z0-9_]{0,31}")
ARRAY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
NONCE = re.compile(r"[0-9a-f]{32}")
HASH = re.compile(r"sha256:[0-9a-f]{64}")
KEY_ID = re.compile(r"ed25519:[0-9a-f]{32}")
#: ASCII digits only: ``\d`` in a text pattern also matches other scripts' digits, which
#: ``int`` reads, so one instant would have many spellings.
TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?Z"
)
MAX_INT = 2**53 - 1  # exact in every JSON implementation (IEEE doubles)


def fail(detail: str) -> Rejected:
    return Rejected(Reason.MALFORMED, detail)


# -- values ------------------------------------------------------------------------------------


def format_time(t: dt.datetime) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-24T19:53:18.123Z``."""
    if t.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    u = t.astimezone(dt.UTC)
    return f"{u:%Y-%m-%dT%H:%M:%S}.{u.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=256)
def parse_time(text: str) -> dt.datetime:
    """The instant of an RFC 3339 UTC timestamp (``...Z``); ``ValueError`` otherwise.

    Cached: one envelope's timestamp is read by the reader, the constructor and the window
    check, and a datetime is immutable."""
    m = TIMESTAMP.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not an RFC 3339 UTC timestamp like 2026-01-31T12:00:00Z")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6])
    return dt.datetime(y, mo, d, h, mi, s, micro, tzinfo=dt.UTC)


def now_utc(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def new_nonce() -> str:
    return secrets.token_hex(16)


def check_pattern(value: str, pattern: re.Pattern[str], what: str, name: str) -> str:
    if not pattern.fullmatch(value):
        raise fail(f"{name} must be {what}, got {value[:80]!r}")
    return value


# -- readers -----------------------------------------------------------------------------------


def get_str(obj: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str) -> str:
    v = obj[name]
    if not isinstance(v, str):
        raise fail(f"{name} must be a string ({what}), got {type(v).__name__}")
    return check_pattern(v, pattern, what, name)


def get_int(obj: Mapping[str, Any], name: str, *, minimum: int = 0) -> int:
    v = obj[name]
    if not isinstance(v, int) or isinstance(v, bool) or not minimum <= v <= MAX_INT:
        raise fail(f"{name} must be an integer in [{minimum}, 2^53), got {v!r:.80}")
    return v


def get_float(obj: Mapping[str, Any], name: str) -> float:
    v = obj[name]
    # A JSON float, never an integer: the canonical bytes of 1 and 1.0 differ.
    if not isinstance(v, float):
        raise fail(f"{name} must be a JSON number with a fraction (e.g. 0.5 or 1.0), got {v!r:.80}")
    return v


def get_optional_float(obj: Mapping[str, Any], name: str) -> float | None:
    return None if obj[name] is None else get_float(obj, name)


def get_positive_floats(obj: Mapping[str, Any], name: str, limit: int) -> tuple[float, ...]:
    v = obj[name]
    if not isinstance(v, list) or not 1 <= len(v) <= limit:
        raise fail(f"{name} must be a list of 1 to {limit} numbers")
    for x in v:
        if not isinstance(x, float) or not math.isfinite(x) or x <= 0:
            raise fail(
                f"{name} must hold positive finite JSON numbers with a fraction, got {x!r:.40}"
            )
    return tuple(v)


def get_time(obj: Mapping[str, Any], name: str) -> str:
    v = obj[name]
    if not isinstance(v, str):
        raise fail(f"{name} must be an RFC 3339 UTC timestamp string")
    try:
        parse_time(v)
    except ValueError as err:
        raise fail(f"{name}: {err}") from err
    return v


def get_signature(obj: Mapping[str, Any]) -> str:
    v = obj["signature"]
    if not isinstance(v, str) or len(v) != 88:
        raise fail("signature must be the standard base64 of 64 bytes (88 characters)")
    try:
        raw = binascii.a2b_base64(v, strict_mode=True)
    except (binascii.Error, ValueError) as err:
        raise fail(f"signature is not base64: {err}") from err
    if len(raw) != 64 or not canonical_base64_tail(raw, v):
        raise fail("signature must be the canonical base64 of 64 bytes")
    return v


def get_node_list(obj: Mapping[str, Any], name: str, limit: int) -> tuple[str, ...]:
    v = obj[name]
    if not isinstance(v, list):
        raise fail(f"{name} must be a list of node ids")
    if len(v) > limit:
        raise Rejected(Reason.OVERSIZE, f"{name} lists {len(v)} nodes, the limit is {limit}")
    for item in v:
        if not isinstance(item, str) or not NODE_ID.fullmatch(item):
            raise fail(f"{name} must hold node ids, got {item!r:.80}")
    if v != sorted(set(v)):
        raise fail(f"{name} must be sorted and without repeats")
    return tuple(v)


# -- arrays ------------------------------------------------------------------------------------


def freeze(a: NDArray[Any]) -> NDArray[Any]:
    """A read-only, C-contiguous, native-order copy (value objects never share buffers)."""
    out = np.array(a, dtype=a.dtype.newbyteorder("="), order="C", copy=True)
    out.setflags(write=False)
    return out


def arrays_to_wire(arrays: Mapping[str, NDArray[Any]]) -> dict[str, dict[str, Any]]:
    return {name: array_to_wire(arrays[name]) for name in sorted(arrays)}


_DTYPES: dict[str, np.dtype[Any]] = {name: np.dtype(name) for name in ALLOWED_DTYPES}
_SPEC_MEMBERS = frozenset({"dtype", "shape", "data"})


def get_arrays(obj: Mapping[str, Any], limits: Limits) -> dict[str, NDArray[Any]]:
    """Decode ``arrays`` under the limits: count, names, dtypes, dims, elements, base64."""
    v = obj["arrays"]
    if not isinstance(v, dict):
        raise fail("arrays must be an object: name -> {dtype, shape, data}")
    if len(v) > limits.max_arrays:
        raise Rejected(Reason.OVERSIZE, f"{len(v)} arrays, the limit is {limits.max_arrays}")
    total = 0
    specs: list[tuple[str, np.dtype[Any], tuple[int, ...], int, str]] = []
    for name, spec in v.items():
        if not ARRAY_NAME.fullmatch(name):
            raise fail(f"array name {name[:40]!r} must match {ARRAY_NAME.pattern}")
        if not isinstance(spec, dict) or spec.keys() != _SPEC_MEMBERS:
            raise fail(f"arrays.{name} must be an object with exactly dtype, shape and data")
        dtype, shape, data = spec["dtype"], spec["shape"], spec["data"]
        if not isinstance(dtype, str) or dtype not in limits.allowed_dtypes:
            raise Rejected(
                Reason.BAD_SHAPE,
                f"arrays.{name}.dtype {dtype!r:.40} is not one of {sorted(limits.allowed_dtypes)}",
            )
        if not isinstance(shape, list):
            raise fail(f"arrays.{name}.shape must be a list of non-negative integers")
        count = 1
        # Entries are checked before the number of dimensions, and multiplied only when
        # there are few of them (the product of a long list of large numbers is slow).
        few = len(shape) <= limits.max_dims
        for s in shape:
            if type(s) is not int or not 0 <= s <= MAX_INT:  # JSON gives exact ints (no bool)
                raise fail(f"arrays.{name}.shape must be a list of non-negative integers")
            if few:
                count *= s
        if not few:
            raise Rejected(
                Reason.BAD_SHAPE,
                f"arrays.{name} has {len(shape)} dimensions, at most {limits.max_dims} allowed",
            )
        total += count
        if total > limits.max_elements:
            raise Rejected(
                Reason.OVERSIZE, f"arrays hold over {limits.max_elements} elements in total"
            )
        if not isinstance(data, str):
            raise fail(f"arrays.{name}.data must be a base64 string")
        specs.append((name, _DTYPES[dtype], tuple(shape), count, data))
    out: dict[str, NDArray[Any]] = {}
    for name, dtype, shape, count, data in specs:
        nbytes = count * dtype.itemsize
        if len(data) != 4 * ((nbytes + 2) // 3):
            raise Rejected(
                Reason.BAD_SHAPE,
                f"arrays.{name}: shape {list(shape)} of {dtype.str} needs {nbytes} bytes, "
                f"data has {len(data)} base64 characters",
            )
        try:
            raw = b64decode_strict(data)
        except ValueError as err:
            raise fail(f"arrays.{name}.data is not base64: {err}") from err
        if len(raw) != nbytes:
            raise Rejected(Reason.BAD_SHAPE, f"arrays.{name}: {len(raw)} bytes, needs {nbytes}")
        # Canonical base64 only (unused trailing bits zero), so one array has one spelling.
        if not canonical_base64_tail(raw, data):
            raise fail(f"arrays.{name}.data is not canonical base64")
        a = np.frombuffer(raw, dtype=dtype).reshape(shape)
        # An array over the immutable ``raw`` is already read-only and C-contiguous; only a
        # foreign byte order needs the native copy.
        out[name] = a if dtype.isnative else freeze(a)
    return out


def canonical_base64_tail(raw: bytes, text: str) -> bool:
    """Whether ``text``, which strict base64 decoding (``validate=True``) turned into ``raw``
    with ``len(text) == 4 * ceil(len(raw) / 3)``, is ``b64encode(raw)``.

    Every full 4-character group maps to its 3 bytes one to one, so only the last group, whose
    unused low bits a sender could set, can differ; re-encoding it alone saves encoding the
    whole array again.
    """
    tail = len(raw) % 3 or 3
    return not raw or binascii.b2a_base64(raw[-tail:], newline=False).decode("ascii") == text[-4:]


def check_finite(arrays: Mapping[str, NDArray[Any]]) -> None:
    # ``isfinite(a).all()`` measures as fast as the one-pass alternatives at update sizes
    # (2 us for 256 x 4; a sum or a dot product would also warn on overflow or inf - inf).
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise Rejected(Reason.NOT_FINITE, f"arrays.{name} holds NaN or infinity")


def require_float_matrix(arrays: Mapping[str, NDArray[Any]], name: str, ndim: int) -> None:
    a = arrays[name]
    if a.dtype.kind != "f" or a.ndim != ndim:
        raise Rejected(
            Reason.BAD_SHAPE, f"arrays.{name} must be a {ndim}-d float array, got {a.dtype.str}"
        )


def require_int_vector(arrays: Mapping[str, NDArray[Any]], name: str) -> None:
    a = arrays[name]
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise Rejected(Reason.BAD_SHAPE, f"arrays.{name} must be a 1-d integer array")
