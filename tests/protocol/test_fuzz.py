"""Fuzzing the parser: arbitrary bytes, arbitrary JSON, and envelopes with arbitrary members
only ever produce a typed rejection."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smfel.agent.codec import canonical_json
from smfel.agent.protocol import (
    Reason,
    Rejected,
    SignedEnvelope,
    parse_checkpoint,
    parse_envelope,
    parse_global,
    parse_rotation,
    parse_round,
    parse_update,
)
from tests.protocol.vectors import (
    KEY,
    NOW,
    golden_checkpoint,
    golden_global,
    golden_round,
    golden_update,
)

pytestmark = pytest.mark.device
PUB = KEY.public_key()
PARSERS: list[Callable[..., SignedEnvelope]] = [
    parse_update,
    parse_round,
    parse_global,
    parse_checkpoint,
    parse_rotation,
    parse_envelope,
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _outcome(parse: Callable[..., SignedEnvelope], data: bytes) -> Rejected | None:
    """``None`` when accepted, the rejection otherwise; any other exception fails the test."""
    try:
        parse(data, now=NOW, public_key=PUB)
    except Rejected as err:
        return err
    return None


def _only_typed_rejections(data: bytes) -> None:
    for parse in PARSERS:
        err = _outcome(parse, data)
        if err is not None:
            assert isinstance(err.reason, Reason)
            assert err.detail


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    _only_typed_rejections(data)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json(value: Any) -> None:
    _only_typed_rejections(json.dumps(value).encode())
    _only_typed_rejections(canonical_json(value))


ENVELOPES = [golden_update(), golden_round(), golden_global(), golden_checkpoint()]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ENVELOPES), st.data(), json_values)
def test_envelopes_with_arbitrary_members(
    env: SignedEnvelope, data: st.DataObject, value: Any
) -> None:
    obj = env.to_dict()
    target: dict[str, Any] = obj
    if "arrays" in obj and data.draw(st.booleans()):
        name = data.draw(st.sampled_from(sorted(obj["arrays"])))
        target = obj["arrays"][name]
    key = data.draw(st.sampled_from(sorted(target)) | st.text(max_size=6))
    if data.draw(st.booleans()) and key in target:
        del target[key]
    else:
        target[key] = value
    _only_typed_rejections(canonical_json(obj))
    _only_typed_rejections(json.dumps(obj, indent=1).encode())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ENVELOPES), st.binary(min_size=1, max_size=8), st.integers(0, 10**6))
def test_envelopes_with_spliced_bytes(env: SignedEnvelope, junk: bytes, at: int) -> None:
    data = env.to_bytes()
    i = at % len(data)
    _only_typed_rejections(data[:i] + junk + data[i:])
    _only_typed_rejections(data[:i])
