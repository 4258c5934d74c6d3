"""Properties: sign-then-verify round trips, and any changed bit is caught with the right reason."""

from __future__ import annotations

import base64
import json
import re
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smfel.agent.codec import canonical_json
from smfel.agent.protocol import KINDS, Reason, Rejected, Update, UpdateKind, parse_update
from tests.protocol.test_envelopes import GOLDEN_UPDATE
from tests.protocol.vectors import KEY, NOW

pytestmark = pytest.mark.device
PUB = KEY.public_key()

node_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@st.composite
def updates(draw: st.DrawFn) -> Update:
    kind: UpdateKind = draw(st.sampled_from(KINDS))
    L = draw(st.integers(1, 6))
    K = draw(st.integers(1, 4))
    dtype = np.dtype(draw(st.sampled_from(["<f8", "<f4"])))
    elems = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
    counts = draw(hnp.arrays(np.int64, (K,), elements=st.integers(0, 1000)))
    if kind == "stats":
        arrays: dict[str, Any] = {
            "U": draw(hnp.arrays(dtype, (L, L), elements=elems)),
            "V": draw(hnp.arrays(dtype, (L, K), elements=elems)),
            "class_counts": counts,
        }
    else:
        arrays = {"beta": draw(hnp.arrays(dtype, (L, K), elements=elems))}
        if draw(st.booleans()):
            arrays["class_counts"] = counts
    acc = draw(st.none() | st.floats(0.0, 1.0))
    return Update.create(
        KEY,
        node_id=draw(node_ids),
        round=draw(st.integers(0, 2**40)),
        kind=kind,
        arrays=arrays,
        n_samples=int(counts.sum()) + draw(st.integers(50, 10**6)),
        local_accuracy=acc,
        model_hash="sha256:" + draw(st.binary(min_size=32, max_size=32)).hex(),
        now=NOW,
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates())
def test_sign_then_verify_round_trip(u: Update) -> None:
    assert u.verify(PUB)
    p = parse_update(u.to_bytes(), now=NOW, public_key=PUB)
    assert p == u
    assert p.envelope_id == u.envelope_id
    for name, a in u.arrays.items():
        assert p.arrays[name].dtype == a.dtype
        np.testing.assert_array_equal(p.arrays[name], a)


_FORMATS = {
    "node_id": r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
    "model_hash": r"sha256:[0-9a-f]{64}",
    "nonce": r"[0-9a-f]{32}",
    "timestamp": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z",
}


def _flip_char(s: str, i: int, bit: int) -> str:
    c = chr(ord(s[i]) ^ (1 << bit))
    return s[:i] + c + s[i + 1 :]


def _valid_time(s: str) -> bool:
    import datetime as dt

    try:
        dt.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates(), st.data())
def test_any_flipped_bit_of_any_field_is_rejected_with_its_reason(
    u: Update, data: st.DataObject
) -> None:
    obj = json.loads(u.to_bytes())
    field = data.draw(st.sampled_from(sorted(Update.FIELDS)))
    expected: set[Reason]
    if field == "arrays":
        name = data.draw(st.sampled_from(sorted(obj["arrays"])))
        raw = bytearray(base64.b64decode(obj["arrays"][name]["data"]))
        if not raw:  # an empty array has no bits to flip
            return
        i = data.draw(st.integers(0, len(raw) * 8 - 1))
        raw[i // 8] ^= 1 << (i % 8)
        obj["arrays"][name]["data"] = base64.b64encode(bytes(raw)).decode()
        expected = {Reason.HASH_MISMATCH}
    elif field == "signature":
        raw = bytearray(base64.b64decode(obj["signature"]))
        i = data.draw(st.integers(0, 511))
        raw[i // 8] ^= 1 << (i % 8)
        obj["signature"] = base64.b64encode(bytes(raw)).decode()
        expected = {Reason.BAD_SIGNATURE}
    elif field in ("round", "n_samples"):
        obj[field] ^= 1 << data.draw(st.integers(0, 52))
        expected = {Reason.BAD_SIGNATURE}
    elif field == "local_accuracy":
        if obj[field] is None:
            return
        bits = struct.unpack("<Q", struct.pack("<d", obj[field]))[0]
        flipped = struct.unpack(
            "<d", struct.pack("<Q", bits ^ (1 << data.draw(st.integers(0, 63))))
        )[0]
        if not np.isfinite(flipped):
            return  # JSON has no spelling for it
        obj[field] = flipped
        expected = {Reason.BAD_SIGNATURE}
    else:
        s = obj[field]
        i = data.draw(st.integers(0, len(s) - 1))
        obj[field] = _flip_char(s, i, data.draw(st.integers(0, 6)))
        value = obj[field]
        if field == "schema":
            expected = {Reason.BAD_SCHEMA}
        elif field == "kind":
            expected = {Reason.MALFORMED}
        elif field == "weights_hash":
            ok = re.fullmatch(r"sha256:[0-9a-f]{64}", value)
            expected = {Reason.HASH_MISMATCH if ok else Reason.MALFORMED}
        elif field == "key_id":
            ok = re.fullmatch(r"ed25519:[0-9a-f]{32}", value)
            expected = {Reason.UNKNOWN_KEY if ok else Reason.MALFORMED}
        else:
            well_formed = bool(re.fullmatch(_FORMATS[field], value)) and (
                field != "timestamp" or _valid_time(value)
            )
            expected = {Reason.BAD_SIGNATURE if well_formed else Reason.MALFORMED}
    with pytest.raises(Rejected) as info:
        parse_update(canonical_json(obj), now=NOW, public_key=PUB)
    assert info.value.reason in expected, (field, info.value)


def test_every_single_bit_flip_of_the_wire_bytes_is_rejected() -> None:
    counts: dict[Reason, int] = {}
    for i in range(len(GOLDEN_UPDATE) * 8):
        data = bytearray(GOLDEN_UPDATE)
        data[i // 8] ^= 1 << (i % 8)
        with pytest.raises(Rejected) as info:
            parse_update(bytes(data), now=NOW, public_key=PUB)
        counts[info.value.reason] = counts.get(info.value.reason, 0) + 1
    # the flips land in syntax, member names, values, array data and the signature
    assert {Reason.MALFORMED, Reason.BAD_SIGNATURE, Reason.HASH_MISMATCH} <= counts.keys()
