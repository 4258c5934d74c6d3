"""The verification pipeline, check by check, on real signed envelopes and a real registry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smfel.agent import HiddenLayer
from smfel.agent.codec import array_to_wire
from smfel.agent.keys import Ed25519PrivateKey
from smfel.aggregator.pipeline import Limits, Reason, Rejected, Verifier
from smfel.aggregator.registry import Registry
from tests.aggregator import crafting as wire
from tests.aggregator.crafting import CLASSES, WEIGHTS, enrol, learner, registry_at, stats_update

L = 16


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = registry_at(tmp_path)
    yield reg
    reg.close()


@pytest.fixture
def hidden() -> HiddenLayer:
    return HiddenLayer.generate(5, L, seed=3)


def _verifier(registry: Registry, kind: str = "stats", **kw: Any) -> Verifier:
    limits = Limits(n_hidden=L, classes=CLASSES, class_weight=WEIGHTS, min_beats=50, **kw)
    return Verifier(registry, limits, kind)  # type: ignore[arg-type]


def _payload(env: dict[str, Any]) -> bytes:
    return wire.encode(env)


def test_a_good_update_is_accepted(registry: Registry, hidden: HiddenLayer) -> None:
    key = enrol(registry, "a")
    lr = learner(hidden, 1)
    acc = _verifier(registry).verify(_payload(stats_update(key, "a", 4, lr)), round=4)
    assert acc.node_id == "a"
    assert acc.n_samples == 120
    np.testing.assert_array_equal(acc.U, lr.statistics().U)


def test_accepted_arrays_are_the_parsed_ones_and_stay_immutable(
    registry: Registry, hidden: HiddenLayer
) -> None:
    """The verified update keeps the parser's arrays (read-only views of the decoded bytes)
    without a copy; nothing can write to them or make them writeable."""
    key = enrol(registry, "a")
    lr = learner(hidden, 1)
    acc = _verifier(registry).verify(_payload(stats_update(key, "a", 4, lr)), round=4)
    for name, a in acc.arrays.items():
        owner: object = a
        while isinstance(owner, np.ndarray):
            owner = owner.base
        assert type(owner) is bytes, name  # a view of the decoded bytes, not a copy
        assert not a.flags.writeable
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.flags.writeable = True
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0
    np.testing.assert_array_equal(acc.U, lr.statistics().U)
    np.testing.assert_array_equal(acc.class_counts, lr.statistics().class_counts)


def _resign(env: dict[str, Any], key: Ed25519PrivateKey, **changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in env.items() if k not in ("signature", "key_id")}
    body.update(changes)
    return wire.sign(body, key)


CASES = [
    "oversize",
    "malformed",
    "bad_schema",
    "unknown_key",
    "revoked_key",
    "bad_signature",
    "hash_mismatch",
    "wrong_round",
    "stale_timestamp",
    "future_timestamp",
    "replayed_nonce",
    "duplicate",
    "bad_shape",
    "not_finite",
    "too_few_beats",
    "out_of_bounds",
]


@pytest.mark.parametrize("case", CASES)
def test_every_reason(case: str, registry: Registry, hidden: HiddenLayer) -> None:
    key = enrol(registry, "a")
    lr = learner(hidden, 2)
    v = _verifier(registry, max_payload=200_000)
    env = stats_update(key, "a", 1, lr)
    already: set[str] = set()
    payload: bytes
    if case == "oversize":
        payload = b" " * 200_001
    elif case == "malformed":
        payload = b"{not json"
    elif case == "bad_schema":
        payload = _payload({**env, "extra": 1})
    elif case == "unknown_key":
        payload = _payload(stats_update(Ed25519PrivateKey.generate(), "a", 1, lr))
    elif case == "revoked_key":
        registry.revoke("a")
        payload = _payload(env)
    elif case == "bad_signature":
        payload = _payload({**env, "n_samples": env["n_samples"] + 1})
    elif case == "hash_mismatch":
        other = stats_update(key, "a", 1, learner(hidden, 3))
        payload = _payload(_resign(env, key, arrays=other["arrays"]))
    elif case == "wrong_round":
        payload = _payload(stats_update(key, "a", 7, lr))
    elif case == "stale_timestamp":
        payload = _payload(stats_update(key, "a", 1, lr, timestamp=wire.stamp(time.time() - 7200)))
    elif case == "future_timestamp":
        payload = _payload(stats_update(key, "a", 1, lr, timestamp=wire.stamp(time.time() + 3600)))
    elif case == "replayed_nonce":
        v.verify(_payload(env), round=1)
        payload = _payload(env)
    elif case == "duplicate":
        already = {"a"}
        payload = _payload(env)
    elif case == "bad_shape":
        payload = _payload(
            stats_update(key, "a", 1, learner(HiddenLayer.generate(5, L + 1, seed=1), 1))
        )
    elif case == "not_finite":
        st = lr.statistics()
        U = st.U.copy()
        U[0, 0] = np.nan
        payload = _payload(
            wire.update(
                key,
                node_id="a",
                round=1,
                kind="stats",
                n_samples=st.n,
                arrays={"U": U, "V": st.V, "class_counts": st.class_counts},
            )
        )
    elif case == "too_few_beats":
        payload = _payload(stats_update(key, "a", 1, learner(hidden, 4, n=20)))
    else:
        st = lr.statistics()
        payload = _payload(
            wire.update(
                key,
                node_id="a",
                round=1,
                kind="stats",
                n_samples=st.n,
                arrays={"U": st.U * 1e6, "V": st.V, "class_counts": st.class_counts},
            )
        )
    with pytest.raises(Rejected) as info:
        v.verify(payload, round=1, already=already)
    assert info.value.reason == Reason(case)
    if case not in ("oversize", "malformed"):
        assert info.value.node_id == "a"


def test_statistics_bounds(registry: Registry, hidden: HiddenLayer) -> None:
    key = enrol(registry, "a")
    st = learner(hidden, 5).statistics()
    v = _verifier(registry)
    bad = {
        "labels above n": {"U": st.U, "V": st.V, "class_counts": st.class_counts + 1},
        "not PSD": {
            "U": st.U - 5 * np.eye(L) * np.trace(st.U) / L,
            "V": st.V,
            "class_counts": st.class_counts,
        },
        "asymmetric": {
            "U": st.U + np.triu(np.ones((L, L)), 1),
            "V": st.V,
            "class_counts": st.class_counts,
        },
        "negative V": {"U": st.U, "V": -st.V, "class_counts": st.class_counts},
        "counts that add up to n only in int64": {
            "U": st.U,
            "V": st.V,
            "class_counts": np.array([2**63 - 1, 2**63 - 1, 2, st.n], dtype=np.int64),
        },
    }
    for name, arrays in bad.items():
        env = wire.update(key, node_id="a", round=1, kind="stats", n_samples=st.n, arrays=arrays)
        with pytest.raises(Rejected) as info:
            v.verify(_payload(env), round=1)
        assert info.value.reason is Reason.OUT_OF_BOUNDS, name


def test_beta_updates_and_wrong_kind(registry: Registry, hidden: HiddenLayer) -> None:
    key = enrol(registry, "a")
    lr = learner(hidden, 6)
    env = wire.update(
        key, node_id="a", round=2, kind="beta", n_samples=120, arrays={"beta": lr.beta_}
    )
    acc = _verifier(registry, "beta").verify(_payload(env), round=2)
    np.testing.assert_array_equal(acc.beta, lr.beta_)
    assert set(acc.arrays) == {"beta"}
    with pytest.raises(Rejected) as info:
        _verifier(registry, "stats").verify(_payload(env), round=2)
    assert info.value.reason is Reason.BAD_SHAPE
    # The optional class counts of a beta update are checked, then left out of what is kept.
    counts = np.array([100, 10, 6, 4], dtype=np.int64)
    env = wire.update(
        key,
        node_id="a",
        round=2,
        kind="beta",
        n_samples=120,
        arrays={"beta": lr.beta_, "class_counts": counts},
    )
    acc = _verifier(registry, "beta").verify(_payload(env), round=2)
    assert set(acc.arrays) == {"beta"}
    np.testing.assert_array_equal(acc.beta, lr.beta_)


def test_arrays_with_a_forbidden_dtype_are_refused(registry: Registry) -> None:
    key = enrol(registry, "a")
    env = wire.update(
        key, node_id="a", round=1, kind="beta", n_samples=60, arrays={"beta": np.zeros((L, 4))}
    )
    spec = dict(array_to_wire(np.zeros((L, 4))))
    spec["dtype"] = "<c16"
    forged = _resign(env, key, arrays={"beta": spec})
    with pytest.raises(Rejected) as info:
        _verifier(registry, "beta").verify(json.dumps(forged).encode(), round=1)
    assert info.value.reason is Reason.BAD_SHAPE


def test_a_key_signs_only_for_its_own_node(registry: Registry, hidden: HiddenLayer) -> None:
    key = enrol(registry, "a")
    enrol(registry, "b")
    lr = learner(hidden, 7)
    v = _verifier(registry)
    with pytest.raises(Rejected) as info:
        v.verify(_payload(stats_update(key, "b", 1, lr)), round=1)  # a's key, b's name
    assert info.value.reason is Reason.UNKNOWN_KEY
    assert info.value.node_id == "b"
    assert v.verify(_payload(stats_update(key, "a", 1, lr)), round=1).node_id == "a"
