"""Conformance suite run on every registered strategy, plus each strategy's own maths."""

from __future__ import annotations

import itertools
import pickle
import sys

import numpy as np
import pytest
from numpy.typing import NDArray

from smfel.agent import OSELM, HiddenLayer
from smfel.aggregator.strategies import (
    STRATEGIES,
    AcceptedUpdate,
    AggregationError,
    Exact,
    FedAvg,
    GlobalState,
    Strategy,
    make_strategy,
)

L, K = 12, 4
C = 5.0


def _learner(seed: int) -> OSELM:
    hidden = HiddenLayer.generate(6, L, seed=99)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80 + 7 * seed, 6))
    y = rng.integers(0, K, size=len(X))
    return OSELM(hidden, ("N", "S", "V", "F"), C=C, class_weight=[1.0, 3.0, 2.0, 5.0]).learn_many(
        X, y
    )


def _update(kind: str, seed: int, node: str | None = None, rnd: int = 3) -> AcceptedUpdate:
    lr = _learner(seed)
    st = lr.statistics()
    arrays: dict[str, NDArray[np.generic]] = (
        {"U": st.U, "V": st.V, "class_counts": st.class_counts}
        if kind == "stats"
        else {"beta": lr.beta_}
    )
    return AcceptedUpdate(
        node_id=node or f"node-{seed:02d}",
        round=rnd,
        kind=kind,  # type: ignore[arg-type]
        n_samples=st.n,
        update_hash=f"sha256:{seed:064x}",
        arrays=arrays,
    )


def _strategy(name: str) -> Strategy:
    return make_strategy(name, C=C, seed=7)


def _updates(strategy: Strategy, n: int = 5) -> list[AcceptedUpdate]:
    return [_update(strategy.kind, s) for s in range(1, n + 1)]


def _snapshot(updates: list[AcceptedUpdate]) -> list[dict[str, bytes]]:
    return [{k: a.tobytes() for k, a in u.arrays.items()} for u in updates]


NAMES = sorted(STRATEGIES)


@pytest.mark.parametrize("name", NAMES)
def test_satisfies_the_interface(name: str) -> None:
    s = _strategy(name)
    assert isinstance(s, Strategy)
    assert s.name == name
    # each strategy cites its paper
    assert s.__class__.__doc__
    assert "20" in (sys.modules[s.__class__.__module__].__doc__ or "")


@pytest.mark.parametrize("name", NAMES)
def test_inputs_not_mutated(name: str) -> None:
    s = _strategy(name)
    ups = _updates(s)
    before = _snapshot(ups)
    prev = s.aggregate(ups, None)
    assert prev is not None
    prev_beta = prev.beta.tobytes()
    s.aggregate(ups, prev)
    assert _snapshot(ups) == before
    assert prev.beta.tobytes() == prev_beta
    # and they cannot be: arrays are read-only
    with pytest.raises(ValueError, match="read-only"):
        next(iter(ups[0].arrays.values()))[...] = 0


def _as_parsed(u: AcceptedUpdate) -> AcceptedUpdate:
    """``u`` with its arrays as the parser decodes them: read-only views of ``bytes``."""
    arrays = {n: np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape) for n, a in u.arrays.items()}
    return AcceptedUpdate(u.node_id, u.round, u.kind, u.n_samples, u.update_hash, arrays)


@pytest.mark.parametrize("name", NAMES)
def test_parsed_arrays_are_kept_and_never_written(name: str) -> None:
    s = _strategy(name)
    copied = _updates(s)
    ups = [_as_parsed(u) for u in copied]
    for u in ups:
        again = AcceptedUpdate(u.node_id, u.round, u.kind, u.n_samples, u.update_hash, u.arrays)
        for n, a in u.arrays.items():
            assert again.arrays[n] is a  # kept as they are: no copy
            with pytest.raises(ValueError, match="WRITEABLE"):
                a.flags.writeable = True
    before = _snapshot(ups)
    prev = s.aggregate(ups, None)
    assert prev is not None
    s.aggregate(ups, prev)
    assert _snapshot(ups) == before
    want = s.aggregate(copied, None)
    assert want is not None
    assert prev.beta.tobytes() == want.beta.tobytes()


def test_arrays_anyone_could_write_to_are_copied() -> None:
    values = np.arange(6.0).reshape(3, 2)
    owned = values.copy()
    owned.flags.writeable = False  # its owner may set the flag again
    over_bytearray = np.frombuffer(bytearray(values.tobytes())).reshape(3, 2)
    over_bytearray.flags.writeable = False
    cases = {
        "writeable": values.copy(),
        "read-only, owning its memory": owned,
        "read-only view of a bytearray": over_bytearray,
        "view of bytes, float32": np.frombuffer(values.astype(np.float32).tobytes(), np.float32),
        "view of bytes, big-endian": np.frombuffer(values.astype(">f8").tobytes(), ">f8"),
        "view of bytes, not contiguous": np.frombuffer(values.tobytes()).reshape(3, 2)[:, ::2],
    }
    for case, a in cases.items():
        u = AcceptedUpdate("n", 1, "beta", 10, "h", {"beta": a})
        kept = u.arrays["beta"]
        assert not np.shares_memory(kept, a), case
        assert kept.dtype == np.float64 and kept.flags.c_contiguous, case
        np.testing.assert_array_equal(kept, a, err_msg=case)
        with pytest.raises(ValueError, match="read-only"):
            kept[...] = 0


@pytest.mark.parametrize("name", NAMES)
def test_permutation_invariant(name: str) -> None:
    s = _strategy(name)
    ups = _updates(s, 4)
    ref = s.aggregate(ups, None)
    assert ref is not None
    for perm in itertools.permutations(ups):
        out = s.aggregate(list(perm), None)
        assert out is not None
        # bit for bit: strategies sum in a canonical order
        assert out.beta.tobytes() == ref.beta.tobytes()
        assert out.weights == ref.weights


@pytest.mark.parametrize("name", NAMES)
def test_identical_updates_are_a_fixed_point(name: str) -> None:
    s = _strategy(name)
    one = _update(s.kind, 3)
    copies = [
        AcceptedUpdate(f"node-{i}", one.round, one.kind, one.n_samples, f"h{i}", one.arrays)
        for i in range(4)
    ]
    out = s.aggregate(copies, None)
    assert out is not None
    if s.kind == "beta":
        # the model the updates represent comes back unchanged
        np.testing.assert_allclose(out.beta, one.beta, rtol=0, atol=1e-12)
    else:
        # statistics describe data, not a model: k copies of the same beats are the same
        # beats seen k times, i.e. one device holding k * U and k * V
        big = AcceptedUpdate(
            "all",
            one.round,
            "stats",
            4 * one.n_samples,
            "h",
            {"U": 4 * one.U, "V": 4 * one.V, "class_counts": 4 * one.class_counts},
        )
        ref = s.aggregate([big], None)
        assert ref is not None
        np.testing.assert_allclose(out.beta, ref.beta, rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_seed_determinism(name: str) -> None:
    ups = _updates(_strategy(name))
    a = make_strategy(name, C=C, seed=11).aggregate(ups, None)
    b = make_strategy(name, C=C, seed=11).aggregate(list(reversed(ups)), None)
    assert a is not None
    assert b is not None
    assert a.beta.tobytes() == b.beta.tobytes()


@pytest.mark.parametrize("name", NAMES)
def test_no_quorum_returns_none(name: str) -> None:
    s = make_strategy(name, C=C, min_updates=3)
    assert s.aggregate([], None) is None
    assert s.aggregate(_updates(s, 2), None) is None
    assert s.aggregate(_updates(s, 3), None) is not None


@pytest.mark.parametrize("name", NAMES)
def test_refuses_mixed_kinds_and_shapes(name: str) -> None:
    s = _strategy(name)
    other = "beta" if s.kind == "stats" else "stats"
    with pytest.raises(AggregationError, match="expected"):
        s.aggregate([_update(s.kind, 1), _update(other, 2)], None)
    with pytest.raises(AggregationError, match="several rounds"):
        s.aggregate([_update(s.kind, 1, rnd=1), _update(s.kind, 2, rnd=2)], None)


@pytest.mark.parametrize("name", NAMES)
def test_state_pickles(name: str) -> None:
    s = _strategy(name)
    out = s.aggregate(_updates(s), None)
    assert out is not None
    back = pickle.loads(  # noqa: S301 (our own bytes)
        pickle.dumps(out)
    )
    assert back.beta.tobytes() == out.beta.tobytes()
    assert (
        pickle.loads(  # noqa: S301 (our own bytes)
            pickle.dumps(s)
        )
        == s
    )


# -- exact -------------------------------------------------------------------------------------


def test_exact_equals_the_centralised_fit() -> None:
    hidden = HiddenLayer.generate(6, L, seed=99)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(600, 6))
    y = rng.integers(0, K, size=600)
    cw = [1.0, 3.0, 2.0, 5.0]
    central = OSELM(hidden, ("N", "S", "V", "F"), C=C, class_weight=cw).learn_many(X, y).resolve()
    parts = np.array_split(np.arange(600), 7)
    ups = []
    for i, idx in enumerate(parts):
        st = OSELM(hidden, ("N", "S", "V", "F"), C=C, class_weight=cw).learn_many(X[idx], y[idx])
        s = st.statistics()
        ups.append(
            AcceptedUpdate(
                f"n{i}",
                1,
                "stats",
                s.n,
                f"h{i}",
                {"U": s.U, "V": s.V, "class_counts": s.class_counts},
            )
        )
    out = Exact(C=C).aggregate(ups, None)
    assert out is not None
    assert np.abs(out.beta - central.beta_).max() <= 1e-10
    assert out.n_samples == 600
    assert out.class_counts is not None
    assert out.class_counts.tolist() == np.bincount(y, minlength=K).tolist()


def test_exact_late_devices_and_rounds_add_in() -> None:
    ups = [_update("stats", s, rnd=1) for s in range(1, 5)]
    late = [_update("stats", s, rnd=2) for s in range(5, 7)]
    r1 = Exact(C=C).aggregate(ups, None)
    assert r1 is not None
    r2 = Exact(C=C).aggregate(late, r1)
    all_at_once = Exact(C=C).aggregate(
        [
            AcceptedUpdate(u.node_id, 2, u.kind, u.n_samples, u.update_hash, u.arrays)
            for u in ups + late
        ],
        None,
    )
    assert r2 is not None
    assert all_at_once is not None
    assert np.abs(r2.beta - all_at_once.beta).max() <= 1e-12
    assert r2.n_samples == all_at_once.n_samples


def test_exact_refuses_bad_c() -> None:
    with pytest.raises(AggregationError, match="C must be"):
        Exact(C=0.0)


# -- fedavg ------------------------------------------------------------------------------------


def test_fedavg_weights_by_sample_count() -> None:
    a = AcceptedUpdate("a", 1, "beta", 10, "ha", {"beta": np.full((L, K), 1.0)})
    b = AcceptedUpdate("b", 1, "beta", 30, "hb", {"beta": np.full((L, K), 5.0)})
    out = FedAvg().aggregate([a, b], None)
    assert out is not None
    np.testing.assert_allclose(out.beta, np.full((L, K), 4.0))
    assert out.weights == {"a": 0.25, "b": 0.75}
    assert out.n_samples == 40
    assert not out.has_statistics


def test_unknown_strategy_named_in_error() -> None:
    with pytest.raises(AggregationError, match="expected one of"):
        make_strategy("krum")


def test_global_state_is_frozen() -> None:
    g = GlobalState(round=1, beta=np.zeros((2, 2)), n_samples=0)
    with pytest.raises(ValueError, match="read-only"):
        g.beta[0, 0] = 1.0
