"""Canonical bytes of a parsed envelope, built without the general JSON encoder (internal).

``canonical_json`` (sorted keys, no spaces, UTF-8; RFC 8259 JSON) is too slow for a receiver
that checks thousands of envelopes a second: each call builds an encoder and, on an update,
scans the long base64 strings of the arrays for characters to escape (about 2 ns per character,
20 us for one 256 x 4 ``beta``). Here the scalar members are written directly, as the encoder
writes them (strings by the encoder's own C escaping function, integers and floats by their
``repr``), lists and objects other than ``arrays`` by the encoder, and the ``arrays`` member,
once the parser has read it with ``_fields.get_arrays`` (names of ``[A-Za-z0-9_]``, allowed
dtype spellings, lists of integers, strict base64 ``data``: nothing JSON escapes), without any
scan. The same pieces give both encodings the parser needs: the whole envelope (compared with
the received bytes) and the envelope without ``signature`` (the bytes the Ed25519 signature
covers, RFC 8032).

The result is byte for byte ``canonical_json`` of the same object; the protocol tests compare
the two on every envelope type, on generated updates and on members of every JSON type.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["ENCODER", "envelope_bytes", "json_string"]

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


def _arrays_member(arrays: Mapping[str, Mapping[str, Any]]) -> str:
    """``{...}`` of an ``arrays`` member that ``_fields.get_arrays`` accepted: nothing in it
    needs escaping, members in sorted order as ``sort_keys`` writes them."""
    out: list[str] = []
    for name in sorted(arrays):
        spec = arrays[name]
        shape = ",".join([int.__repr__(s) for s in spec["shape"]])
        out.append(f'"{name}":{{"data":"')
        out.append(spec["data"])
        out.append(f'","dtype":"{spec["dtype"]}","shape":[{shape}]}}')
        out.append(",")
    out[-1:] = []  # no comma after the last member (and nothing when there is none)
    return "{" + "".join(out) + "}"


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


def envelope_bytes(obj: Mapping[str, Any], *, arrays_checked: bool) -> tuple[bytes, bytes]:
    """``(canonical_json(obj), canonical_json(obj without "signature"))``.

    ``obj`` (a decoded JSON object) must have a ``signature`` member. With ``arrays_checked``
    its ``arrays`` member must have passed ``get_arrays`` (the caller's guarantee; the member
    is then written without the escape scan). ``ValueError`` when ``obj`` has no JSON
    encoding (an infinite number, a lone surrogate), as ``canonical_json`` would raise.
    """
    first, last = _layout(tuple(obj))
    arrays = _ARRAYS if arrays_checked else None
    before = [p + (_arrays_member(obj[k]) if k == arrays else _value(obj[k])) for k, p in first]
    after = [p + _value(obj[k]) for k, p in last]
    try:
        head = ("{" + ",".join(before)).encode("utf-8")
        tail = (",".join(after) + "}").encode("utf-8")
        signature = ('"signature":' + _value(obj[_SIGNATURE])).encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"a string has no UTF-8 encoding: {err.reason}") from None
    full = b"".join([head, b"," if before else b"", signature, b"," if after else b"", tail])
    signed = b"".join([head, b"," if before and after else b"", tail])
    return full, signed
