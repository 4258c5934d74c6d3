"""Signed envelopes the aggregation side writes: update (for devices and tests), round
announcement and global model.

The format is that of DESIGN.md, "Wire protocol": a JSON object whose ``signature`` is Ed25519
(RFC 8032) over the canonical JSON (sorted keys, no spaces, UTF-8) of every other field, arrays as
``{"dtype", "shape", "data"}`` with ``weights_hash`` = :func:`smfel.agent.codec.arrays_digest`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent.codec import array_to_wire, arrays_digest, canonical_json
from smfel.agent.keys import Ed25519PrivateKey, key_id, sign_bytes

__all__ = [
    "GLOBAL_SCHEMA",
    "ROUND_SCHEMA",
    "encode",
    "global_model",
    "rfc3339",
    "round_announcement",
    "sign",
    "update",
]

ROUND_SCHEMA = "smfel.round/1"
GLOBAL_SCHEMA = "smfel.global/1"


def rfc3339(t: float | None = None) -> str:
    """UTC time as ``2026-01-31T12:00:00.123456Z``."""
    when = datetime.now(UTC) if t is None else datetime.fromtimestamp(t, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def sign(body: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``body`` plus ``key_id`` and the signature over everything else."""
    out = {**body, "key_id": key_id(key)}
    out["signature"] = sign_bytes(key, canonical_json(out))
    return out


def encode(envelope: Mapping[str, Any]) -> bytes:
    return canonical_json(dict(envelope))


def _arrays(arrays: Mapping[str, NDArray[Any]]) -> tuple[dict[str, Any], str]:
    wire = {n: array_to_wire(np.ascontiguousarray(a)) for n, a in arrays.items()}
    return wire, arrays_digest(dict(arrays))


def update(
    key: Ed25519PrivateKey,
    *,
    node_id: str,
    round: int,
    kind: str,
    n_samples: int,
    arrays: Mapping[str, NDArray[Any]],
    local_accuracy: float | None = None,
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A signed ``smfel.update/1`` envelope (what a device publishes for a round)."""
    wire, digest = _arrays(arrays)
    body = {
        "schema": "smfel.update/1",
        "node_id": node_id,
        "round": round,
        "kind": kind,
        "n_samples": n_samples,
        "local_accuracy": local_accuracy,
        "timestamp": timestamp or rfc3339(),
        "nonce": nonce or secrets.token_hex(16),
        "arrays": wire,
        "weights_hash": digest,
    }
    return sign(body, key)


def round_announcement(
    key: Ed25519PrivateKey,
    *,
    round: int,
    model_hash: str,
    strategy: str,
    kind: str,
    deadline: float,
    min_beats: int,
    C: float,
    class_weight: tuple[float, ...],
) -> dict[str, Any]:
    """A signed ``smfel.round/1`` announcement (published retained on ``fl/round``).

    ``C`` and ``class_weight`` are announced so every device learns with the same ridge and
    class weights, which the exact strategy relies on.
    """
    body = {
        "schema": ROUND_SCHEMA,
        "round": round,
        "model_hash": model_hash,
        "strategy": strategy,
        "kind": kind,
        "deadline": rfc3339(deadline),
        "min_beats": min_beats,
        "C": C,
        "class_weight": list(class_weight),
        "timestamp": rfc3339(),
    }
    return sign(body, key)


def global_model(
    key: Ed25519PrivateKey,
    *,
    round: int,
    strategy: str,
    model_hash: str,
    n_samples: int,
    contributors: int,
    arrays: Mapping[str, NDArray[Any]],
) -> dict[str, Any]:
    """A signed ``smfel.global/1`` model: ``beta`` and, for ``exact``, the pooled statistics."""
    wire, digest = _arrays(arrays)
    body = {
        "schema": GLOBAL_SCHEMA,
        "round": round,
        "strategy": strategy,
        "model_hash": model_hash,
        "n_samples": n_samples,
        "contributors": contributors,
        "arrays": wire,
        "weights_hash": digest,
        "timestamp": rfc3339(),
    }
    return sign(body, key)
