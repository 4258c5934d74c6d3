"""Fixed inputs for golden vectors and envelope builders shared by the protocol tests."""

from __future__ import annotations

import datetime as dt

import numpy as np

from smfel.agent.keys import Ed25519PrivateKey
from smfel.agent.protocol import (
    GlobalModel,
    KeyRotation,
    LedgerCheckpoint,
    RoundAnnouncement,
    SignedEnvelope,
    Update,
)

SEED = bytes(range(32))
KEY = Ed25519PrivateKey.from_private_bytes(SEED)
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
NOW = dt.datetime(2026, 1, 31, 12, 0, 0, 123000, tzinfo=dt.UTC)
NONCE = "00112233445566778899aabbccddeeff"
MODEL = "sha256:" + "ab" * 32
BETA = np.array([[0.5, -1.25], [2.0, 0.0]])


def golden_update() -> Update:
    return Update.create(
        KEY,
        node_id="ward3-bed12",
        round=7,
        kind="beta",
        arrays={"beta": BETA, "class_counts": np.array([40, 20], dtype=np.int64)},
        n_samples=60,
        local_accuracy=0.9375,
        model_hash=MODEL,
        now=NOW,
        nonce=NONCE,
    )


def golden_round() -> RoundAnnouncement:
    return RoundAnnouncement.create(
        KEY,
        round=7,
        model_hash=MODEL,
        strategy="exact",
        kind="stats",
        deadline=NOW + dt.timedelta(minutes=10),
        C=1.0,
        class_weight=[1.0, 2.5, 4.0, 8.0],
        min_beats=50,
        now=NOW,
        nonce=NONCE,
    )


def golden_global() -> GlobalModel:
    return GlobalModel.create(
        KEY,
        round=7,
        model_hash=MODEL,
        strategy="fedavg",
        arrays={"beta": BETA},
        n_samples=120,
        contributors=["ward3-bed12", "ward1-bed02"],
        ledger_height=8,
        now=NOW,
        nonce=NONCE,
    )


def golden_checkpoint() -> LedgerCheckpoint:
    return LedgerCheckpoint.create(
        KEY,
        height=8,
        head_hash="sha256:" + "cd" * 32,
        merkle_root="sha256:" + "ef" * 32,
        tree_size=9,
        now=NOW,
        nonce=NONCE,
    )


def golden_rotation() -> KeyRotation:
    return KeyRotation.create(
        KEY, OTHER_KEY.public_key(), node_id="ward3-bed12", now=NOW, nonce=NONCE
    )


def stats_update(L: int = 16, K: int = 4, n: int = 80, seed: int = 0) -> Update:
    """A ``stats`` update with statistics of real sigmoid activations."""
    rng = np.random.default_rng(seed)
    H = 1.0 / (1.0 + np.exp(-rng.normal(size=(n, L))))
    y = rng.integers(0, K, n)
    T = np.eye(K)[y]
    return Update.create(
        KEY,
        node_id="ward1-bed02",
        round=3,
        kind="stats",
        arrays={"U": H.T @ H, "V": H.T @ T, "class_counts": np.bincount(y, minlength=K)},
        n_samples=n,
        local_accuracy=0.8125,
        model_hash=MODEL,
        now=NOW,
    )


GOLDEN: dict[str, tuple[SignedEnvelope, str]] = {}
