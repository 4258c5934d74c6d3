"""The parser's layout reader of updates decides nothing the full parse would decide otherwise.

``parse._update_from_template`` reads a canonical update by its layout, without the JSON scan and
the re-encoding. Every outcome (the envelope, or the reason, node and round of a refusal) must be
the one the full parse gives, for canonical updates of every shape and for spellings near them;
spellings it does not fit go back to the full parse.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from smfel.agent.codec import canonical_json
from smfel.agent.keys import sign_bytes
from smfel.agent.protocol import Limits, Update, parse_update
from smfel.agent.protocol import parse as parse_module
from smfel.agent.protocol.limits import DEFAULT_LIMITS
from tests.protocol.test_fast_path import _mutations, _outcome
from tests.protocol.test_properties import updates
from tests.protocol.vectors import KEY, NOW, golden_update, stats_update

pytestmark = pytest.mark.device
LIMITS = Limits(min_beats=0)


def _full_parse_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "_update_from_template", lambda *_: None)


def _signed_wire(obj: dict[str, Any]) -> bytes:
    """``obj`` signed again by ``KEY`` (its ``key_id``), in canonical bytes."""
    body = {k: v for k, v in obj.items() if k != "signature"}
    return canonical_json({**body, "signature": sign_bytes(KEY, canonical_json(body))})


@pytest.mark.parametrize("make", [golden_update, stats_update])
def test_a_canonical_update_is_read_by_its_layout(make: Any) -> None:
    u = make()
    wire = u.to_bytes()
    read = parse_module._update_from_template(wire, DEFAULT_LIMITS)
    assert read is not None
    env, signed = read
    assert env.to_bytes() == wire
    assert signed == u.signed_bytes() == canonical_json(u.body())
    assert env == parse_update(wire, now=NOW, public_key=KEY.public_key(), limits=LIMITS)


@pytest.mark.parametrize("make", [golden_update, stats_update])
def test_the_layout_reader_changes_no_outcome(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    wires = _mutations(make().to_bytes())
    fitted = sum(parse_module._update_from_template(w, LIMITS) is not None for w in wires)
    assert fitted >= 1  # the unmodified wire at least
    with_template = [_outcome(w, LIMITS) for w in wires]
    assert len(set(with_template)) > 5  # the mutations reach several checks
    _full_parse_only(monkeypatch)
    assert [_outcome(w, LIMITS) for w in wires] == with_template


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(u=updates())
def test_generated_updates_are_read_by_their_layout(u: Update) -> None:
    wire = u.to_bytes()
    read = parse_module._update_from_template(wire, LIMITS)
    assert read is not None
    assert read[0].to_bytes() == wire
    assert read[1] == canonical_json(u.body())


def _variants() -> list[bytes]:
    """Canonical and near-canonical spellings of members the layout spells itself: numbers,
    array names and their order, shapes, strings the readers refuse."""
    base = golden_update().to_dict()
    base["arrays"] = dict(base["arrays"])
    out: list[bytes] = []
    for acc in (None, 0.0, -0.0, 1.0, 1e-05, 0.30000000000000004, 1e16, 1.5, 2.5e-300):
        out.append(_signed_wire({**base, "local_accuracy": acc}))
    wire = _signed_wire(base)
    acc_text = json.dumps(base["local_accuracy"]).encode()
    member = b'"local_accuracy":' + acc_text
    for spelling in (b"1", b"0.50", b"5e-1", b"0.5E-0", b"-0", b"1e400", b"00.5", b"0.5 "):
        out.append(wire.replace(member, b'"local_accuracy":' + spelling))
    for n in (0, 1, 2**53 - 1, 2**53, 10**16, 10**17):
        out.append(_signed_wire({**base, "n_samples": n, "round": n}))
    out.append(wire.replace(b'"round":7', b'"round":07'))
    out.append(wire.replace(b'"round":7', b'"round":-7'))
    out.append(wire.replace(b'"round":7', b'"round":7.0'))
    out.append(wire.replace(b'"shape":[2,2]', b'"shape":[2,02]'))
    out.append(wire.replace(b'"shape":[2,2]', b'"shape":[2, 2]'))
    out.append(wire.replace(b'"shape":[2,2]', b'"shape":[]'))
    arrays = base["arrays"]
    beta, counts = arrays["beta"], arrays["class_counts"]
    # names out of order, repeated, with characters the names may not have
    out.append(wire.replace(b'"beta":', b'"zeta":', 1))
    out.append(_signed_wire({**base, "arrays": {"A": beta, "class_counts": counts}}))
    text = canonical_json(base)
    i, j = text.index(b'"beta":'), text.index(b',"class_counts":')
    out.append(text[:i] + text[j + 1 :].replace(b"}},", b"}," + text[i:j] + b"},", 1))
    out.append(text.replace(b'"class_counts":', text[i:j] + b',"beta":', 1))
    out.append(wire.replace(b'"beta":', b'"be-ta":', 1))
    # strings the readers refuse or that JSON would escape
    out.append(wire.replace(b'"node_id":"ward3-bed12"', b'"node_id":"-ward3"'))
    out.append(wire.replace(b'"node_id":"ward3-bed12"', b'"node_id":"ward3\\u002dbed12"'))
    out.append(wire.replace(b'"kind":"beta"', b'"kind":"stats"'))
    out.append(wire.replace(b'"kind":"beta"', b'"kind":"Beta"'))
    out.append(wire.replace(b'"dtype":"<f8"', b'"dtype":">f8"'))
    out.append(wire.replace(b'"dtype":"<f8"', b'"dtype":"<f2"'))
    out.append(wire.replace(b"T12:00:00.123Z", b"T25:00:00.123Z"))
    out.append(wire.replace(b"T12:00:00.123Z", "T12:00:0\u0660.123Z".encode()))
    out.append(wire.replace(b'"schema":"smfel.update/1"', b'"schema":"smfel.update/2"'))
    out.append(wire.replace(b'"schema":"smfel.update/1"', b'"schema":"smfel.update\\/1"'))
    out.append(wire.replace(b',"timestamp":', b',"extra":1,"timestamp":'))
    sig = base["signature"].encode()
    out.append(wire.replace(sig, sig[:-3] + b"B=="))  # unused bits set: not canonical base64
    data = beta["data"].encode()
    out.append(wire.replace(data, data[:-2] + b"\\u0041" + data[-1:]))
    out.append(wire.replace(data, data[:-1] + b"\xc3\xa9"))
    return out


def test_numbers_names_and_strings_have_the_outcome_of_the_full_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wires = _variants()
    fitted = [parse_module._update_from_template(w, LIMITS) is not None for w in wires]
    assert 5 < sum(fitted) < len(wires)  # both readers are exercised
    with_template = [_outcome(w, LIMITS) for w in wires]
    accepted = [o for o in with_template if " " not in o]
    assert len(accepted) >= 8  # the canonical spellings above parse
    _full_parse_only(monkeypatch)
    assert [_outcome(w, LIMITS) for w in wires] == with_template


def test_the_signed_bytes_are_those_the_signature_covers() -> None:
    # A signature over other bytes than the body is refused whichever reader ran.
    wire = golden_update().to_bytes()
    forged = json.loads(wire)
    forged["nonce"] = "f" * 32
    bad = canonical_json(forged)  # the old signature over the new body
    assert parse_module._update_from_template(bad, LIMITS) is not None
    assert _outcome(bad, LIMITS).startswith("bad_signature ")


def test_oversize_and_foreign_types_go_to_the_full_parse() -> None:
    wire = golden_update().to_bytes()
    small = Limits(max_payload_bytes=len(wire) - 1)
    assert parse_module._update_from_template(wire, small) is None
    assert _outcome(wire, small).startswith("oversize ")
    assert _outcome(bytes(np.frombuffer(wire, dtype=np.uint8)), LIMITS) == wire.hex()


@pytest.mark.parametrize("digit", ["\u0660", "\u0966", "\uff10", "\U0001d7ce"])
def test_a_timestamp_has_ascii_digits_only(digit: str) -> None:
    # Other scripts' digits read as numbers too ("12:00:0\u0660" would be 12:00:00), so they
    # would give one instant several spellings; RFC 3339 has ASCII digits only.
    u = golden_update()
    obj = u.to_dict()
    obj["timestamp"] = obj["timestamp"].replace("12:00:00", "12:00:0" + digit)
    wire = _signed_wire(obj)
    outcome = _outcome(wire, LIMITS)
    assert outcome == "malformed None None"  # refused by the reader, before the envelope exists
    assert _outcome(_signed_wire(u.to_dict()), LIMITS) == u.to_bytes().hex()
