"""Canonical bytes of an envelope, written without the general JSON encoder (internal).

``canonical_json`` (sorted keys, no spaces, UTF-8; RFC 8259 JSON) is too slow for a receiver
that checks thousands of envelopes a second: each call builds an encoder and, on an update,
scans the long base64 strings of the arrays for characters to escape (about 2 ns per character,
20 us for one 256 x 4 ``beta``). Here the scalar members are written directly, as the encoder
writes them (strings by the encoder's own C escaping function, integers and floats by their
``repr``), lists and objects other than ``arrays`` by the encoder, and the ``arrays`` member
without the scan of its ``data``: base64, which JSON never escapes, whether ``arrays_to_wire``
wrote it or ``_fields.get_arrays`` has just decoded it strictly. The parser checks the received
bytes against the pieces (the members before ``signature``, ``signature``, the members after)
without joining them, and builds from the same pieces the bytes the Ed25519 signature covers
(RFC 8032): the envelope without ``signature``.

The result is byte for byte ``canonical_json`` of the same object; the protocol tests compare
the two on every envelope type, on generated updates and on members of every JSON type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ENCODER",
    "canonical_bytes",
    "envelope_bytes",
    "json_string",
    "signed_bytes_if_canonical",
]

#: The encoder of ``canonical_json``, built once (``json.dumps`` builds one per call).
ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
#: The string escaping ``ENCODER`` uses (``ensure_ascii=False``): the C function when built.
json_string = json.encoder.encode_basestring

_ARRAYS = "arrays"
_SIGNATURE = "signature"


def _value(v: Any) -> str:
    """``ENCODER.encode(v)``, with the scalar types written directly."""
    t = type(v)
    if t is str:
        return json_string(v)
    if t is int:
        return int.__repr__(v)
    if t is float:
        if not math.isfinite(v):
            raise ValueError(f"{v!r} is not a JSON number")
        return float.__repr__(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    return ENCODER.encode(v)


def _arrays_member(out: list[str], arrays: Mapping[str, Mapping[str, Any]]) -> None:
    """Append ``{...}`` of an ``arrays`` member whose ``data`` strings are base64 (which JSON
    never escapes) and shapes lists of integers to ``out``: members in sorted order as
    ``sort_keys`` writes them, names and dtypes escaped as the encoder would (they are short),
    and each long ``data`` string one fragment, copied only by the final join."""
    sep = "{"
    for name in sorted(arrays):
        spec = arrays[name]
        shape = ",".join(map(int.__repr__, spec["shape"]))
        out.append(f'{sep}{json_string(name)}:{{"data":"')
        out.append(spec["data"])
        out.append(f'","dtype":{json_string(spec["dtype"])},"shape":[{shape}]}}')
        sep = ","
    out.append("}" if sep == "," else "{}")


def canonical_bytes(obj: Mapping[str, Any], *, arrays_checked: bool) -> bytes:
    """``canonical_json(obj)`` of an envelope's JSON object; with ``arrays_checked`` its
    ``arrays`` member must hold base64 ``data`` strings and integer shapes (what
    ``arrays_to_wire`` writes and ``get_arrays`` accepts) and is written without the scan."""
    out: list[str] = ["{"]
    for k in sorted(obj):
        if len(out) > 1:
            out.append(",")
        out.append(json_string(k) + ":")
        if arrays_checked and k == _ARRAYS:
            _arrays_member(out, obj[k])
        else:
            out.append(_value(obj[k]))
    out.append("}")
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"a string has no UTF-8 encoding: {err.reason}") from None


_Layout = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]
#: Member names in key order -> (name, ``"name":``) of the members before and after
#: ``signature`` in sorted order. An envelope type has one member set, so few entries.
_LAYOUTS: dict[tuple[str, ...], _Layout] = {}


def _layout(names: tuple[str, ...]) -> _Layout:
    got = _LAYOUTS.get(names)
    if got is None:
        members = [(k, json_string(k) + ":") for k in sorted(names) if k != _SIGNATURE]
        got = (
            tuple(m for m in members if m[0] < _SIGNATURE),
            tuple(m for m in members if m[0] > _SIGNATURE),
        )
        if len(_LAYOUTS) >= 64:
            _LAYOUTS.clear()
        _LAYOUTS[names] = got
    return got


def _pieces(obj: Mapping[str, Any], arrays_checked: bool) -> tuple[bytes, bytes, bytes]:
    """``canonical_json(obj)`` in three pieces: ``{`` and the members before ``signature``,
    the ``signature`` member, the members after it and ``}`` (no commas between pieces)."""
    first, last = _layout(tuple(obj))
    out: list[str] = ["{"]
    for k, prefix in first:
        if len(out) > 1:
            out.append(",")
        out.append(prefix)
        if arrays_checked and k == _ARRAYS:
            _arrays_member(out, obj[k])
        else:
            out.append(_value(obj[k]))
    try:
        head = "".join(out).encode("utf-8")
        tail = (",".join([p + _value(obj[k]) for k, p in last]) + "}").encode("utf-8")
        signature = ('"signature":' + _value(obj[_SIGNATURE])).encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"a string has no UTF-8 encoding: {err.reason}") from None
    return head, signature, tail


def _after_head(head: bytes, signature: bytes, tail: bytes) -> bytes:
    """What follows ``head`` in the whole encoding (``head`` is ``{`` alone when no member
    sorts before ``signature``, ``tail`` is ``}`` alone when none sorts after it)."""
    return b"".join(
        [b"," if len(head) > 1 else b"", signature, b"," if len(tail) > 1 else b"", tail]
    )


def _signed(head: bytes, tail: bytes) -> bytes:
    return b"".join([head, b"," if len(head) > 1 and len(tail) > 1 else b"", tail])


def envelope_bytes(obj: Mapping[str, Any], *, arrays_checked: bool) -> tuple[bytes, bytes]:
    """``(canonical_json(obj), canonical_json(obj without "signature"))``.

    ``obj`` (a decoded JSON object) must have a ``signature`` member. With ``arrays_checked``
    its ``arrays`` member must have passed ``get_arrays`` (the caller's guarantee; the member
    is then written without the escape scan). ``ValueError`` when ``obj`` has no JSON
    encoding (an infinite number, a lone surrogate), as ``canonical_json`` would raise.
    """
    head, signature, tail = _pieces(obj, arrays_checked)
    return head + _after_head(head, signature, tail), _signed(head, tail)


def signed_bytes_if_canonical(
    data: bytes, obj: Mapping[str, Any], *, arrays_checked: bool
) -> bytes | None:
    """``canonical_json(obj without "signature")`` if ``data`` is ``canonical_json(obj)``,
    else ``None`` (arguments and errors as :func:`envelope_bytes`). The received bytes are
    compared piece by piece, so the whole encoding is never built, only the signed bytes."""
    head, signature, tail = _pieces(obj, arrays_checked)
    rest = _after_head(head, signature, tail)  # small: the signature and what follows
    if len(data) != len(head) + len(rest) or not (data.startswith(head) and data.endswith(rest)):
        return None
    return _signed(head, tail)
