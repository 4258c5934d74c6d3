"""Checks every learner must pass (river-style conformance): inputs untouched, determinism,
serialisation round trip, constant memory, clone."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from smfel.agent import OSELM, HiddenLayer, load_state, save_state

pytestmark = pytest.mark.device

LEARNERS: dict[str, Callable[[], OSELM]] = {
    "plain": lambda: OSELM(HiddenLayer.generate(6, 24, seed=5), ("N", "S", "V", "F"), C=3.0),
    "weighted-forgetting": lambda: OSELM(
        HiddenLayer.generate(6, 24, seed=5, activation="tanh"),
        ("N", "S", "V", "F"),
        C=0.5,
        class_weight=[0.3, 4.0, 2.0, 9.0],
        forgetting=0.995,
        resolve_every=40,
    ),
}


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(120, 6)), rng.integers(0, 4, size=120)


@pytest.fixture(params=sorted(LEARNERS))
def make(request: pytest.FixtureRequest) -> Callable[[], OSELM]:
    return LEARNERS[request.param]


def test_inputs_are_not_mutated(make: Callable[[], OSELM]) -> None:
    X, y = _data()
    X0, y0 = X.copy(), y.copy()
    learner = make()
    learner.learn_many(X, y)
    learner.learn_one(X[0], int(y[0]))
    learner.predict_many(X)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_same_data_same_model(make: Callable[[], OSELM]) -> None:
    X, y = _data()
    a, b = make(), make()
    a.learn_many(X, y)
    b.learn_many(X, y)
    np.testing.assert_array_equal(a.beta_, b.beta_)
    np.testing.assert_array_equal(a.P_, b.P_)


def test_clone_is_unfitted_with_same_params(make: Callable[[], OSELM]) -> None:
    X, y = _data()
    a = make()
    a.learn_many(X, y)
    c = a.clone()
    assert not c.is_fitted
    assert c.get_params() == a.get_params()
    np.testing.assert_array_equal(c.predict_many(X), np.zeros((len(X), 4)))


def test_state_round_trip_is_bit_exact(make: Callable[[], OSELM], tmp_path: Path) -> None:
    X, y = _data()
    a = make()
    a.learn_many(X[:70], y[:70])
    path = tmp_path / "learner.state"
    save_state(a, path)
    b = load_state(path)
    for name in ("beta_", "P_", "U_", "V_", "class_counts_", "class_weight_"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert b.hidden == a.hidden
    assert b.n_seen_ == a.n_seen_ and b.since_resolve_ == a.since_resolve_
    assert (b.C, b.forgetting, b.resolve_every, b.classes) == (
        a.C,
        a.forgetting,
        a.resolve_every,
        a.classes,
    )
    # And both continue identically.
    a.learn_many(X[70:], y[70:])
    b.learn_many(X[70:], y[70:])
    assert a.beta_.tobytes() == b.beta_.tobytes()


def test_memory_per_update_is_constant(make: Callable[[], OSELM]) -> None:
    """10,000 updates keep nothing: traced memory does not grow with the number of updates."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 6))
    y = rng.integers(0, 4, size=100)
    learner = make()
    tracemalloc.start()
    try:
        # Warm up both paths (first calls fill library caches once).
        for i in range(100):
            learner.learn_one(X[i], int(y[i]))
            learner.learn_many(X[:50], y[:50])
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        for i in range(5_000):
            learner.learn_one(X[i % 100], int(y[i % 100]))
        after_one = tracemalloc.get_traced_memory()[0]
        for _ in range(5_000 // 50):
            learner.learn_many(X[:50], y[:50])
        after_block, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after_one - start <= 512
    assert after_block - start <= 512
    # No update holds more than a few block-sized temporaries at once.
    assert peak - start < 256 * 1024
