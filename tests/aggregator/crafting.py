"""Helpers that craft real signed updates (good and bad) for the aggregator tests."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent import OSELM, HiddenLayer
from smfel.agent.codec import array_to_wire, arrays_digest, canonical_json
from smfel.agent.keys import Ed25519PrivateKey, key_id, public_key_raw, sign_bytes
from smfel.aggregator.registry import Registry, parse_enrolment

CLASSES = ("N", "S", "V", "F")
WEIGHTS = (1.0, 4.0, 3.0, 8.0)
C = 2.0
MODEL = "sha256:" + "ab" * 32


def stamp(t: float | None = None) -> str:
    u = dt.datetime.now(dt.UTC) if t is None else dt.datetime.fromtimestamp(t, dt.UTC)
    return f"{u:%Y-%m-%dT%H:%M:%S}.{u.microsecond // 1000:03d}Z"


def sign(body: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``body`` with ``key_id`` and an Ed25519 signature over the canonical JSON of the rest."""
    out = {**body, "key_id": key_id(key)}
    out["signature"] = sign_bytes(key, canonical_json(out))
    return out


def encode(env: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(env))


def update(
    key: Ed25519PrivateKey,
    *,
    node_id: str,
    round: int,
    kind: str,
    n_samples: int,
    arrays: Mapping[str, NDArray[Any]],
    model_hash: str | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A signed update in the wire format, built by hand so that any field can be wrong."""
    body = {
        "schema": "smfel.update/1",
        "node_id": node_id,
        "round": round,
        "kind": kind,
        "model_hash": model_hash or MODEL,
        "n_samples": n_samples,
        "local_accuracy": 0.5,
        "arrays": {n: array_to_wire(np.ascontiguousarray(a)) for n, a in sorted(arrays.items())},
        "weights_hash": arrays_digest(dict(arrays)),
        "timestamp": timestamp or stamp(),
        "nonce": nonce or secrets.token_hex(16),
    }
    return sign(body, key)


def enrol(registry: Registry, node: str) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    registry.add(
        parse_enrolment(
            {
                "node_id": node,
                "key_id": key_id(key),
                "public_key": base64.b64encode(public_key_raw(key.public_key())).decode(),
            }
        )
    )
    return key


def learner(hidden: HiddenLayer, seed: int, n: int = 120) -> OSELM:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, hidden.n_features))
    y = rng.integers(0, len(CLASSES), size=n)
    return OSELM(hidden, CLASSES, C=C, class_weight=WEIGHTS).learn_many(X, y)


def stats_update(
    key: Ed25519PrivateKey, node: str, rnd: int, lr: OSELM, **over: Any
) -> dict[str, Any]:
    st = lr.statistics()
    return update(
        key,
        node_id=node,
        round=rnd,
        kind="stats",
        n_samples=st.n,
        arrays={"U": st.U, "V": st.V, "class_counts": st.class_counts},
        **over,
    )


def registry_at(path: Path) -> Registry:
    return Registry(path / "registry.sqlite").open()
