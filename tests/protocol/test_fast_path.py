"""The parser's fast path gives exactly the bytes and digests of the reference encoders.

The parser builds the canonical and the signed bytes from the parsed object without re-encoding
the arrays, hashes the decoded buffers in place and checks canonical base64 on the last group
only; each shortcut is compared here with ``canonical_json``/``arrays_digest``/``b64encode``,
and every spelling the shortcuts must not let through is sent and refused.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from smfel.agent.codec import arrays_digest, canonical_json
from smfel.agent.protocol import (
    ENVELOPE_TYPES,
    Limits,
    Reason,
    Rejected,
    parse_envelope,
    parse_update,
)
from smfel.agent.protocol import parse as parse_module
from smfel.agent.protocol._base import _HEADERS, _MAX_HEADERS, digest
from smfel.agent.protocol._canonical import envelope_bytes, signed_bytes_if_canonical
from smfel.agent.protocol._fields import canonical_base64_tail
from tests.protocol.test_envelopes import GOLDEN_UPDATE
from tests.protocol.test_properties import updates
from tests.protocol.vectors import (
    KEY,
    NOW,
    golden_checkpoint,
    golden_global,
    golden_rotation,
    golden_round,
    golden_update,
    stats_update,
)

pytestmark = pytest.mark.device
PUB = KEY.public_key()
WIRE_DTYPES = ["<f8", "<f4", "<i8", "<i4", "|i1", "|u1", ">f8", ">i4", "=f4"]


def _both(obj: dict[str, Any]) -> tuple[bytes, bytes]:
    body = {k: v for k, v in obj.items() if k != "signature"}
    return canonical_json(obj), canonical_json(body)


@pytest.mark.parametrize(
    "make",
    [golden_update, golden_round, golden_global, golden_checkpoint, golden_rotation, stats_update],
)
def test_envelope_bytes_equal_canonical_json_for_every_type(make: Any) -> None:
    env = make()
    wire = env.to_bytes()
    obj = json.loads(wire)
    got = envelope_bytes(obj, arrays_checked="arrays" in type(env).FIELDS)
    assert got == _both(obj) == (wire, env.signed_bytes())
    # Without the shortcut for arrays the result is the same.
    assert envelope_bytes(obj, arrays_checked=False) == got


def test_envelope_bytes_place_signature_among_any_members() -> None:
    # Members sorting before "arrays", between it and "signature", after it, and non-ASCII.
    arrays = json.loads(golden_update().to_bytes())["arrays"]
    obj = {
        "A": [1, 2.5, None, True],
        "arrays": arrays,
        "b": {"z": '\u00e9\n"x\\', "a": []},
        "signature": "s" * 88,
        "t": -0.0,
        "z\u00ff": {},
    }
    assert envelope_bytes(obj, arrays_checked=True) == _both(obj)
    only = {"signature": "x"}
    assert envelope_bytes(only, arrays_checked=False) == _both(only)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates())
def test_generated_updates_parse_with_the_reference_bytes(u: Any) -> None:
    wire = u.to_bytes()
    obj = json.loads(wire)
    assert envelope_bytes(obj, arrays_checked=True) == (wire, u.signed_bytes())
    p = parse_update(wire, public_key=PUB, now=NOW, limits=Limits(min_beats=0))
    assert p == u and p.weights_hash == arrays_digest(p.arrays)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True),
        st.sampled_from(WIRE_DTYPES).flatmap(
            lambda dt: hnp.arrays(
                np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=5)
            )
        ),
        max_size=4,
    ),
    st.booleans(),
)
def test_digest_equals_arrays_digest(arrays: dict[str, Any], transpose: bool) -> None:
    if transpose:  # non-contiguous views take the copying path
        arrays = {n: a.T for n, a in arrays.items()}
    assert digest(arrays) == arrays_digest(arrays)


def test_digest_headers_are_kept_per_layout_and_bounded() -> None:
    values = np.arange(6.0).reshape(3, 2)
    # One layout after another, each hashed twice (written, then read from the table): byte
    # orders that share a header, dtypes and shapes that do not.
    layouts: list[dict[str, Any]] = [
        {"beta": values.astype("<f8")},
        {"beta": values.astype(">f8")},
        {"beta": values.astype("<f4")},
        {"beta": values.astype("<i8")},
        {"beta": values.T.astype("<f8")},
        {"beta": values.reshape(6).astype("<f8")},
        {"beta": values.astype("<f8"), "class_counts": np.arange(2)},
    ]
    for arrays in layouts + layouts:
        assert digest(arrays) == digest(arrays) == arrays_digest(arrays)
    assert len({digest(a) for a in layouts}) == len(layouts) - 1  # ">f8" is "<f8" on the wire
    # Shapes come from the network: the table never holds more than its bound.
    for n in range(_MAX_HEADERS + 20):
        arrays = {"x": np.zeros(n)}
        assert digest(arrays) == arrays_digest(arrays)
        assert 0 < len(_HEADERS) <= _MAX_HEADERS


@given(st.binary(min_size=0, max_size=40), st.data())
def test_last_group_check_is_the_full_reencoding(raw: bytes, data: st.DataObject) -> None:
    text = base64.b64encode(raw).decode()
    assert canonical_base64_tail(raw, text)
    if not raw:
        return
    # Every other spelling of the last group that decodes strictly to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    last = data.draw(st.text(alphabet, min_size=4, max_size=4))
    other = text[:-4] + last
    try:
        decoded = base64.b64decode(other, validate=True)
    except binascii.Error:
        return
    if decoded == raw:
        assert canonical_base64_tail(raw, other) == (other == text)


def _with_data(wire: bytes, name: str, data: str) -> bytes:
    obj = json.loads(wire)
    obj["arrays"][name]["data"] = data
    return canonical_json(obj)


@pytest.mark.parametrize("tail", ["==", "="])
def test_slack_bits_in_the_last_group_are_refused(tail: str) -> None:
    raw = bytes(range(7)) if tail == "==" else bytes(range(8))
    good = base64.b64encode(raw).decode()
    i = len(good) - len(tail) - 1
    bad = good[:i] + chr(ord(good[i]) + 1) + good[i + 1 :]  # sets an unused low bit
    assert base64.b64decode(bad, validate=True) == raw
    wire = golden_update().to_bytes()
    obj = json.loads(wire)
    obj["arrays"]["class_counts"] = {"data": bad, "dtype": "|u1", "shape": [len(raw)]}
    with pytest.raises(Rejected) as info:
        parse_update(canonical_json(obj), now=NOW)
    assert info.value.reason is Reason.MALFORMED
    assert "canonical base64" in info.value.detail


@pytest.mark.parametrize("schema", [s for s, c in ENVELOPE_TYPES.items() if "arrays" in c.FIELDS])
@pytest.mark.parametrize("junk", ['"', "\\", "\u00e9", "\n", " "])
def test_arrays_data_needing_json_escapes_never_reaches_the_encoder(schema: str, junk: str) -> None:
    # The arrays member is written without escaping, which is only right because the readers
    # of every envelope with arrays refuse a data string outside the base64 alphabet.
    env = golden_update() if schema == "smfel.update/1" else golden_global()
    assert schema == env.SCHEMA
    obj = json.loads(env.to_bytes())
    data = obj["arrays"]["beta"]["data"]
    obj["arrays"]["beta"]["data"] = junk + data[len(junk) :]
    with pytest.raises(Rejected) as info:
        parse_envelope(canonical_json(obj), now=NOW, limits=Limits(require_canonical=False))
    assert info.value.reason is Reason.MALFORMED


def test_escaped_spellings_of_the_same_data_are_not_canonical() -> None:
    obj = json.loads(GOLDEN_UPDATE)
    data = obj["arrays"]["class_counts"]["data"]
    assert data.startswith("K")
    for spelling in ("\\u004b" + data[1:], data.replace("A", "\\u0041", 1)):
        wire = GOLDEN_UPDATE.replace(data.encode(), spelling.encode())
        assert json.loads(wire) == obj  # the same object, another spelling
        with pytest.raises(Rejected) as info:
            parse_update(wire, now=NOW, public_key=PUB)
        assert info.value.reason is Reason.MALFORMED
        assert "canonical" in info.value.detail
        # With the canonical form not required, the signature still holds.
        p = parse_update(wire, now=NOW, public_key=PUB, limits=Limits(require_canonical=False))
        assert p == golden_update()


def test_parsed_arrays_are_read_only_and_independent_of_the_payload() -> None:
    wire = bytearray(stats_update().to_bytes())
    p = parse_update(bytes(wire), now=NOW, public_key=PUB)
    before = {n: a.copy() for n, a in p.arrays.items()}
    wire[:] = b"\0" * len(wire)
    for name, a in p.arrays.items():
        assert not a.flags.writeable and a.flags.c_contiguous and a.dtype.isnative
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.setflags(write=True)
        np.testing.assert_array_equal(a, before[name])


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=6),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**60), 2**60)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
            max_leaves=6,
        ),
        max_size=6,
    ),
    st.text(max_size=90),
)
def test_members_of_every_json_type_are_written_as_canonical_json(
    members: dict[str, Any], signature: str
) -> None:
    obj = {**members, "signature": signature}
    try:
        expected = _both(obj)
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8, so no canonical encoding
        with pytest.raises(ValueError, match="UTF-8"):
            envelope_bytes(obj, arrays_checked=False)
        return
    assert envelope_bytes(obj, arrays_checked=False) == expected
    assert signed_bytes_if_canonical(expected[0], obj, arrays_checked=False) == expected[1]


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_a_number_beyond_the_double_range_is_malformed(number: str) -> None:
    # It reads as infinity, which has no JSON spelling: refused, not an uncaught ValueError.
    wire = GOLDEN_UPDATE.replace(b'"local_accuracy":0.9375', f'"local_accuracy":{number}'.encode())
    assert wire != GOLDEN_UPDATE
    for limits in (Limits(), Limits(require_canonical=False)):
        with pytest.raises(Rejected) as info:
            parse_update(wire, now=NOW, public_key=PUB, limits=limits)
        assert info.value.reason is Reason.MALFORMED
    obj = {"local_accuracy": float("inf"), "signature": "s"}
    with pytest.raises(ValueError, match="not a JSON number"):
        envelope_bytes(obj, arrays_checked=False)


@pytest.mark.parametrize("make", [golden_update, stats_update])
def test_a_parsed_update_is_what_its_constructor_builds(make: Any) -> None:
    # The parser builds the update without re-running __post_init__'s checks (it has just
    # run the same readers); every field must be set and the constructor must agree.
    env = make()
    p = parse_update(env.to_bytes(), now=NOW, public_key=PUB)
    rebuilt = dataclasses.replace(p)  # runs __init__ and __post_init__ on the parsed fields
    assert rebuilt == p == env
    for field in dataclasses.fields(p):
        if field.name != "arrays":
            assert getattr(p, field.name) == getattr(env, field.name), field.name
    assert isinstance(p.arrays, MappingProxyType)
    for name, a in env.arrays.items():
        np.testing.assert_array_equal(p.arrays[name], a)


@pytest.mark.parametrize(
    "make",
    [golden_update, golden_round, golden_global, golden_checkpoint, golden_rotation, stats_update],
)
def test_the_piecewise_canonical_check_takes_only_the_canonical_bytes(make: Any) -> None:
    env = make()
    wire = env.to_bytes()
    obj = json.loads(wire)
    checked = "arrays" in type(env).FIELDS
    assert signed_bytes_if_canonical(wire, obj, arrays_checked=checked) == env.signed_bytes()
    # Other spellings of the same object: spaces, another key order, escapes, more bytes.
    spaced = json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()
    unsorted = json.dumps(dict(reversed(list(obj.items()))), separators=(",", ":")).encode()
    escaped = wire.replace(b'"nonce":"', b'"nonc\\u0065":"')
    assert json.loads(escaped) == obj
    for other in (spaced, unsorted, escaped, wire + b" ", b" " + wire, wire[:-1] + b" }"):
        assert json.loads(other) == obj
        assert signed_bytes_if_canonical(other, obj, arrays_checked=checked) is None


@pytest.mark.parametrize(
    "members",
    [{}, {"a": 1}, {"z": 1}, {"a": [1, 2], "z": {"b": None}}, {"arrays": {}, "t": 0.5}],
)
def test_the_piecewise_check_places_the_signature_among_any_members(
    members: dict[str, Any],
) -> None:
    obj = {**members, "signature": "c2ln"}
    full, signed = _both(obj)
    assert envelope_bytes(obj, arrays_checked=True) == (full, signed)
    assert signed_bytes_if_canonical(full, obj, arrays_checked=True) == signed
    assert signed_bytes_if_canonical(signed, obj, arrays_checked=True) is None


def _outcome(wire: bytes, limits: Limits) -> str:
    try:
        u = parse_update(wire, now=NOW, public_key=PUB, limits=limits)
    except Rejected as err:
        return f"{err.reason.value} {err.node_id} {err.round}"
    return u.to_bytes().hex()


def _mutations(wire: bytes) -> list[bytes]:
    """Spellings near a valid update: around and inside the data strings, the markers the
    quick loader looks for in other places, escapes, stray quotes and random byte edits."""
    rng = np.random.default_rng(17)
    marker = b'"data":"'
    first = wire.index(marker) + len(marker)
    out = [
        wire,
        wire.replace(marker, b'"data": "', 1),
        wire.replace(marker, b'"data":"\\u0041', 1),
        wire.replace(marker, b'"data":"A\\"', 1),
        wire.replace(marker, b'"data":"\xc3\xa9', 1),
        wire.replace(marker, b'"data":"\n', 1),
        wire.replace(marker, b'"data":1,"x":"', 1),
        wire.replace(b'"ward3-bed12"', b'"data":"x"', 1),
        wire.replace(b'"kind":"beta"', b'"kind":"beta","data":"AAAA"', 1),
        wire.replace(b'"class_counts":{', b'"class_counts":{"data":"AAAA",', 1),
        wire.replace(b'"dtype":"<f8"', b'"dtype":"<f8","data":"AAAA"', 1),
        wire[:first] + b'"' + wire[first:],
        wire[:first] + wire[first + 4 :],
        wire.replace(b"}}", b'},"data":""}}', 1),
        wire + b'"data":"',
        b'"data":"' + wire,
        wire[: wire.rindex(b'"')],
    ]
    for _ in range(300):
        b = bytearray(wire)
        i = int(rng.integers(len(b)))
        op = int(rng.integers(3))
        if op == 0:
            b[i] = int(rng.choice(list(b'"\\:,{}[]A=/ 0e-')))
        elif op == 1:
            del b[i]
        else:
            b[i:i] = bytes([int(rng.choice(list(b'"\\:,{}A ')))])
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("make", [golden_update, stats_update])
def test_the_quick_loader_changes_no_outcome(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The quick loader (data strings cut out of the JSON scan) must give the same envelope or
    # the same reason, node and round as the full parse, on payloads near a valid one.
    wire = make().to_bytes()
    wires = _mutations(wire)
    limits = Limits(min_beats=0)
    quick = [_outcome(w, limits) for w in wires]
    assert quick[0] == wire.hex()
    assert len(set(quick)) > 5  # the mutations reach several checks
    monkeypatch.setattr(parse_module, "_load_without_data", lambda *_: None)
    assert [_outcome(w, limits) for w in wires] == quick


@pytest.mark.parametrize(
    "make",
    [golden_update, golden_round, golden_global, golden_checkpoint, golden_rotation, stats_update],
)
def test_envelopes_write_the_reference_encoding(make: Any) -> None:
    # to_bytes and signed_bytes write the arrays without the escape scan: the same bytes.
    env = make()
    assert env.to_bytes() == canonical_json(env.to_dict())
    assert env.signed_bytes() == canonical_json(env.body())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates())
def test_generated_updates_write_the_reference_encoding(u: Any) -> None:
    assert u.to_bytes() == canonical_json(u.to_dict())
    assert u.signed_bytes() == canonical_json(u.body())
    assert u.verify(PUB)
