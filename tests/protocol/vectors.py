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

#: RFC 8032, section 7.1, tests 1 to 3: (secret key, public key, message, signature), in hex.
RFC8032 = (
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
        "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760"
        "984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
)


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
