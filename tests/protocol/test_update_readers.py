"""``Update.from_obj`` tests most fields inline before it calls the strict readers; every value
must get the outcome the readers alone give it: the same field value, or the same refusal.

The reference below is ``from_obj`` as it reads with the readers of ``_fields`` only, in the
documented order. Each field is given values of every JSON type, subclasses of the expected
type (which the readers take), near misses of each pattern and, for the signature, every
spelling of the last base64 group.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smfel.agent.codec import canonical_json
from smfel.agent.protocol import Limits, Reason, Rejected, Update
from smfel.agent.protocol import _fields as f
from smfel.agent.protocol.update import KINDS, check_update_arrays
from tests.protocol.vectors import golden_update

pytestmark = pytest.mark.device
LIMITS = Limits(min_beats=0)
FIELDS = (
    "node_id",
    "round",
    "kind",
    "model_hash",
    "n_samples",
    "local_accuracy",
    "arrays",
    "weights_hash",
    "timestamp",
    "nonce",
    "key_id",
    "signature",
)


def _reference(obj: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The fields the strict readers give, in ``from_obj``'s order (or their refusal)."""
    kind = obj["kind"]
    if kind not in KINDS:
        raise f.fail(f"kind must be one of {KINDS}, got {kind!r:.40}")
    fields: dict[str, Any] = {
        "node_id": f.get_str(obj, "node_id", f.NODE_ID, "1-64 of [A-Za-z0-9._-]"),
        "round": f.get_int(obj, "round"),
        "kind": kind,
        "model_hash": f.get_str(obj, "model_hash", f.HASH, "sha256:<64 hex>"),
        "n_samples": f.get_int(obj, "n_samples"),
        "local_accuracy": f.get_optional_float(obj, "local_accuracy"),
        "arrays": f.get_arrays(obj, limits),
        "weights_hash": f.get_str(obj, "weights_hash", f.HASH, "sha256:<64 hex>"),
        "timestamp": f.get_time(obj, "timestamp"),
        "nonce": f.get_str(obj, "nonce", f.NONCE, "32 hex digits"),
        "key_id": f.get_str(obj, "key_id", f.KEY_ID, "ed25519:<32 hex>"),
        "signature": f.get_signature(obj),
    }
    check_update_arrays(kind, fields["arrays"])
    return fields


def _same_outcome(obj: dict[str, Any]) -> str:
    """Asserts that ``from_obj`` and the reference agree on ``obj``; returns the outcome."""
    refusal: tuple[Reason, str] | None = None
    try:
        want = _reference(obj, LIMITS)
    except Rejected as err:
        refusal = (err.reason, err.detail)
    if refusal is not None:
        with pytest.raises(Rejected) as got:
            Update.from_obj(obj, LIMITS)
        assert (got.value.reason, got.value.detail) == refusal
        return f"{refusal[0].value}: {refusal[1]}"
    u = Update.from_obj(obj, LIMITS)
    for name in FIELDS:
        value = getattr(u, name)
        if name == "arrays":
            assert value.keys() == want[name].keys()
            assert all((value[n] == want[name][n]).all() for n in value)
        else:
            assert value == want[name] and type(value) is type(want[name]), name
    return "accepted"


def _valid() -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(golden_update().to_bytes())
    return obj


class _Str(str):
    pass


class _Int(int):
    pass


class _Float(float):
    pass


def _near(text: str) -> list[Any]:
    """Values near a valid string: cut, extended, upper case, other types, a subclass."""
    return [
        text,
        _Str(text),
        text[:-1],
        text + "0",
        text + "\n",
        text.upper(),
        " " + text,
        text.replace("0", "\u0660"),
        "",
        None,
        7,
        7.0,
        True,
        [text],
        {text: text},
    ]


NEAR_INTS = [0, 7, _Int(7), 2**53 - 1, 2**53, -1, True, False, 7.0, "7", None, [7]]
NEAR_FLOATS = [None, 0.5, 0.0, -0.0, _Float(0.5), 1, True, "0.5", [0.5]]


def _cases() -> list[tuple[str, Any]]:
    obj = _valid()
    cases: list[tuple[str, Any]] = []
    for name in ("node_id", "model_hash", "weights_hash", "nonce", "key_id", "timestamp"):
        cases += [(name, v) for v in _near(obj[name])]
    cases += [("node_id", "a" * 64), ("node_id", "a" * 65), ("node_id", "-a"), ("node_id", "a.b_c")]
    cases += [("kind", k) for k in ("beta", "stats", "BETA", _Str("beta"), 1, None)]
    cases += [(name, v) for name in ("round", "n_samples") for v in NEAR_INTS]
    cases += [("local_accuracy", v) for v in NEAR_FLOATS]
    cases += [("signature", v) for v in _near(obj["signature"])]
    return cases


@pytest.mark.parametrize(("name", "value"), _cases())
def test_each_field_has_the_outcome_of_its_reader(name: str, value: Any) -> None:
    obj = _valid()
    obj[name] = value
    _same_outcome(obj)


def test_the_first_bad_field_in_the_documented_order_decides() -> None:
    bad = {
        "node_id": "",
        "round": -1,
        "model_hash": "sha256:",
        "n_samples": True,
        "local_accuracy": 1,
        "weights_hash": 5,
        "timestamp": "yesterday",
        "nonce": "00",
        "key_id": "ed25519:",
        "signature": "A" * 88,
    }
    seen = set()
    for first in range(len(bad)):
        obj = _valid()
        obj.update(dict(list(bad.items())[first:]))
        seen.add(_same_outcome(obj))
    assert len(seen) == len(bad)  # each field in turn is the one refused


@given(raw=st.binary(min_size=64, max_size=64), data=st.data())
def test_every_spelling_of_a_signature_is_read_as_its_reader_reads_it(
    raw: bytes, data: st.DataObject
) -> None:
    text = base64.b64encode(raw).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \u00e9"
    tail = data.draw(st.text(alphabet, min_size=0, max_size=6))
    cut = data.draw(st.integers(min_value=80, max_value=88))
    obj = _valid()
    obj["signature"] = text
    assert _same_outcome(obj) == "accepted"
    obj["signature"] = text[:cut] + tail
    _same_outcome(obj)


B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@pytest.mark.parametrize("last", list(B64 + "=-_"))
def test_every_last_character_of_a_signature_is_read_as_its_reader_reads_it(last: str) -> None:
    """The 86th character carries two bits of the last byte and four unused ones: only the
    characters whose unused bits are zero (``A``, ``Q``, ``g``, ``w``) are canonical."""
    obj = _valid()
    obj["signature"] = obj["signature"][:85] + last + "=="
    outcome = _same_outcome(obj)
    assert (outcome == "accepted") == (last in "AQgw")


def test_a_canonical_update_reads_back_to_its_bytes() -> None:
    obj = _valid()
    u = Update.from_obj(obj, LIMITS)
    assert canonical_json(u.to_dict()) == canonical_json(obj)
    assert u == golden_update()
