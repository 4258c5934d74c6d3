"""Helpers that craft real signed updates (good and bad) for the aggregator tests."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np

from smfel.agent import OSELM, HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, key_id, public_key_raw
from smfel.aggregator import wire
from smfel.aggregator.registry import Registry, parse_enrolment

CLASSES = ("N", "S", "V", "F")
WEIGHTS = (1.0, 4.0, 3.0, 8.0)
C = 2.0


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
    return wire.update(
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
