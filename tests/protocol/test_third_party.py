"""An envelope our code produces verifies by the rules of docs/protocol.md alone.

The verifier below uses nothing but ``cryptography``, ``hashlib``, ``json`` and ``base64``; it does
not import smfel (only the envelopes it checks are made by smfel).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.protocol.vectors import (
    KEY,
    golden_checkpoint,
    golden_global,
    golden_round,
    golden_update,
    stats_update,
)

pytestmark = pytest.mark.device


def canonical(obj: Any) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def third_party_verify(wire: bytes, public_key_raw: bytes, schema: str) -> bool:
    """docs/protocol.md, "Verifying an envelope", steps 1-5."""
    obj = json.loads(wire.decode("utf-8"))
    if not isinstance(obj, dict) or canonical(obj) != wire or obj.get("schema") != schema:
        return False
    if obj["key_id"] != "ed25519:" + hashlib.sha256(public_key_raw).hexdigest()[:32]:
        return False
    if "arrays" in obj:
        names = sorted(obj["arrays"])
        header = {
            n: {"dtype": obj["arrays"][n]["dtype"], "shape": obj["arrays"][n]["shape"]}
            for n in names
        }
        h = hashlib.sha256(canonical(header))
        for n in names:
            h.update(base64.b64decode(obj["arrays"][n]["data"]))
        if "sha256:" + h.hexdigest() != obj["weights_hash"]:
            return False
    body = {k: v for k, v in obj.items() if k != "signature"}
    try:
        Ed25519PublicKey.from_public_bytes(public_key_raw).verify(
            base64.b64decode(obj["signature"]), canonical(body)
        )
    except InvalidSignature:
        return False
    return True


RAW = KEY.public_key().public_bytes_raw()


@pytest.mark.parametrize(
    "build", [golden_update, golden_round, golden_global, golden_checkpoint, stats_update]
)
def test_our_envelopes_verify_with_the_documented_rules(build: Any) -> None:
    env = build()
    wire = env.to_bytes()
    assert third_party_verify(wire, RAW, env.SCHEMA)
    # and the same rules refuse a changed value or a changed array
    obj = json.loads(wire)
    if "round" in obj:
        obj["round"] += 1
    else:
        obj["height"] += 1
    assert not third_party_verify(canonical(obj), RAW, env.SCHEMA)
    assert not third_party_verify(wire, bytes(32 * [7]), env.SCHEMA)


def test_third_party_reads_the_arrays() -> None:
    env = stats_update(L=8, K=3, n=60)
    obj = json.loads(env.to_bytes())
    spec = obj["arrays"]["U"]
    U = np.frombuffer(base64.b64decode(spec["data"]), dtype=spec["dtype"]).reshape(spec["shape"])
    np.testing.assert_array_equal(U, env.arrays["U"])
    raw = bytearray(base64.b64decode(spec["data"]))
    raw[0] ^= 1
    spec["data"] = base64.b64encode(bytes(raw)).decode()
    assert not third_party_verify(canonical(obj), RAW, env.SCHEMA)
