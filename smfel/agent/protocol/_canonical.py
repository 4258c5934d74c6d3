"""Canonical bytes of a parsed envelope without re-encoding its arrays (internal).

``canonical_json`` (sorted keys, no spaces, UTF-8; RFC 8259 JSON) spends almost all of its time
on an update in the escape scan of the long base64 strings of the arrays (about 2 ns per
character, 20 us for one 256 x 4 ``beta``). Strings of the base64 alphabet need no escaping, so
once the parser has decoded every ``data`` string as strict base64 the arrays member can be
written directly, and only the small members go through the JSON encoder. The same pieces give
both encodings the parser needs: the whole envelope (compared with the received bytes) and the
envelope without ``signature`` (the bytes the Ed25519 signature covers, RFC 8032).

The result is byte for byte ``canonical_json`` of the same object; the protocol tests compare
the two on every envelope type and on generated updates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["ENCODER", "envelope_bytes"]

#: The encoder of ``canonical_json``, built once (``json.dumps`` builds one per call).
ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

_ARRAYS = "arrays"
_SIGNATURE = "signature"


def _arrays_member(arrays: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``"arrays":{...}`` as fragments, for an object that ``_fields.get_arrays`` accepted:
    names of ``[A-Za-z0-9_]``, allowed dtype spellings, lists of non-bool integers and strict
    base64 ``data``, none of which JSON escapes. Members in sorted order, as ``sort_keys``; each
    ``data`` string stays one fragment so it is copied only by the final join."""
    out = ['"arrays":{']
    for i, name in enumerate(sorted(arrays)):
        spec = arrays[name]
        shape = ",".join([str(s) for s in spec["shape"]])
        out.append(f'{"," if i else ""}"{name}":{{"data":"')
        out.append(spec["data"])
        out.append(f'","dtype":"{spec["dtype"]}","shape":[{shape}]}}')
    out.append("}")
    return out


def envelope_bytes(obj: Mapping[str, Any], *, arrays_checked: bool) -> tuple[bytes, bytes]:
    """``(canonical_json(obj), canonical_json(obj without "signature"))``.

    ``obj`` must have a ``signature`` member. With ``arrays_checked`` its ``arrays`` member must
    have passed ``get_arrays`` (the caller's guarantee; the member is then written without the
    escape scan); otherwise every member goes through the encoder.
    """
    special = [_ARRAYS, _SIGNATURE] if arrays_checked else [_SIGNATURE]
    # Members between consecutive special keys, in the encoder's (code point) order.
    groups: list[dict[str, Any]] = [{} for _ in range(len(special) + 1)]
    for k, v in obj.items():
        if k in special:
            continue
        i = 0
        while i < len(special) and k > special[i]:
            i += 1
        groups[i][k] = v
    signed: list[str] = []
    full: list[str] = []
    for i, group in enumerate(groups):
        if group:
            text = ENCODER.encode(group)[1:-1]
            for out in (signed, full):
                if out:
                    out.append(",")
                out.append(text)
        if i == len(special):
            break
        if special[i] == _SIGNATURE:
            if full:
                full.append(",")
            full.append('"signature":' + ENCODER.encode(obj[_SIGNATURE]))
        else:
            member = _arrays_member(obj[_ARRAYS])
            for out in (signed, full):
                if out:
                    out.append(",")
                out.extend(member)
    return (
        "".join(["{", *full, "}"]).encode("utf-8"),
        "".join(["{", *signed, "}"]).encode("utf-8"),
    )
