"""Batches of updates: the same outcome per update as one by one, one registry state per batch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smfel.agent import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey
from smfel.aggregator.pipeline import Limits, Rejected, Verifier
from smfel.aggregator.registry import Registry
from tests.aggregator import crafting as wire
from tests.aggregator.crafting import CLASSES, WEIGHTS, enrol, learner, registry_at, stats_update

L = 16


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = registry_at(tmp_path)
    yield reg
    reg.close()


def _verifier(registry: Registry, now: float) -> Verifier:
    limits = Limits(n_hidden=L, classes=CLASSES, class_weight=WEIGHTS, min_beats=50)
    return Verifier(registry, limits, "stats", clock=lambda: now)


def _outcome(verify: Any, payload: bytes, accepted: dict[str, str]) -> str:
    """``verify`` with the round state the service keeps: accepted nodes grow as it goes."""
    try:
        upd = verify(payload, round=1, already=accepted.keys())
    except Rejected as err:
        return f"{err.reason.value} {err.node_id} {err.update_hash}"
    accepted[upd.node_id] = upd.update_hash
    return f"accepted {upd.node_id} {upd.update_hash}"


def _mixed(registry: Registry) -> list[bytes]:
    hidden = HiddenLayer.generate(5, L, seed=3)
    keys = {n: enrol(registry, n) for n in ("a", "b", "c", "gone")}
    registry.revoke("gone")
    lr = learner(hidden, 1)
    good = {n: wire.encode(stats_update(k, n, 1, lr)) for n, k in keys.items()}
    stale = stats_update(keys["c"], "c", 1, lr, timestamp=wire.stamp(time.time() - 7200))
    nan = lr.statistics()
    U = nan.U.copy()
    U[1, 1] = np.inf
    return [
        good["a"],
        good["a"],  # replayed nonce
        wire.encode(stats_update(keys["a"], "a", 1, lr)),  # a second update of a: duplicate
        good["gone"],  # revoked
        wire.encode(stats_update(Ed25519PrivateKey.generate(), "b", 1, lr)),  # unknown key
        wire.encode(stats_update(keys["b"], "b", 2, lr)),  # wrong round
        wire.encode(stale),
        wire.encode(
            wire.update(
                keys["b"],
                node_id="b",
                round=1,
                kind="stats",
                n_samples=nan.n,
                arrays={"U": U, "V": nan.V, "class_counts": nan.class_counts},
            )
        ),
        good["b"],
        b"{not json",
        good["c"][:-2] + b"}}",
        good["c"],
    ]


def test_a_batch_gives_every_update_the_outcome_it_gets_alone(registry: Registry) -> None:
    payloads = _mixed(registry)
    now = time.time()
    one, batch = _verifier(registry, now), _verifier(registry, now).batch()
    alone: dict[str, str] = {}
    together: dict[str, str] = {}
    expected = [_outcome(one.verify, p, alone) for p in payloads]
    got = [_outcome(batch.verify, p, together) for p in payloads]
    assert got == expected
    assert alone == together == {n: alone[n] for n in ("a", "b", "c")}
    reasons = {o.split()[0] for o in expected}
    assert reasons >= {
        "accepted",
        "replayed_nonce",
        "duplicate",
        "revoked_key",
        "unknown_key",
        "wrong_round",
        "stale_timestamp",
        "not_finite",
        "malformed",
    }


def test_a_batch_sees_the_registry_as_it_was_when_it_began(registry: Registry) -> None:
    hidden = HiddenLayer.generate(5, L, seed=3)
    key = enrol(registry, "a")
    lr = learner(hidden, 1)
    first, second = (wire.encode(stats_update(key, "a", 1, lr)) for _ in range(2))
    v = _verifier(registry, time.time())
    before = v.batch()
    # A revocation by another connection (the CLI in another process) during the batch.
    with Registry(registry.path).open() as cli:
        cli.revoke("a")
    assert before.verify(first, round=1).node_id == "a"
    with pytest.raises(Rejected) as info:
        v.batch().verify(second, round=1)
    assert info.value.reason.value == "revoked_key"
    with pytest.raises(Rejected) as info:
        v.verify(second, round=1)
    assert info.value.reason.value == "revoked_key"


def test_a_batch_reads_the_clock_once(registry: Registry) -> None:
    hidden = HiddenLayer.generate(5, L, seed=3)
    key = enrol(registry, "a")
    payload = wire.encode(stats_update(key, "a", 1, learner(hidden, 1)))
    times = iter([time.time(), time.time() + 7200])
    limits = Limits(n_hidden=L, classes=CLASSES, class_weight=WEIGHTS, min_beats=50)
    v = Verifier(registry, limits, "stats", clock=lambda: next(times))
    batch = v.batch()  # the first reading: the update is fresh
    assert batch.verify(payload, round=1).node_id == "a"
    with pytest.raises(Rejected) as info:
        v.verify(payload, round=1)  # two hours later
    assert info.value.reason.value == "stale_timestamp"
