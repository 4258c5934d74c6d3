"""The RLS learner against the batch ridge solution it must equal, on random data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from smfel.agent import OSELM, HiddenLayer, LearnerError, balanced_class_weights
from smfel.agent.learner import SufficientStatistics

pytestmark = pytest.mark.device

CLASSES = ("N", "S", "V", "F")


def batch_ridge(
    H: NDArray[np.float64], y: NDArray[np.intp], w_class: NDArray[np.float64], C: float, K: int
) -> NDArray[np.float64]:
    """The weighted ridge solution computed directly, the reference for every RLS path."""
    w = w_class[y]
    T = np.zeros((len(y), K))
    T[np.arange(len(y)), y] = 1.0
    A = H.T @ (H * w[:, None]) + np.eye(H.shape[1]) / C
    return np.asarray(np.linalg.solve(A, H.T @ (T * w[:, None])), dtype=np.float64)


@st.composite
def streams(draw: st.DrawFn) -> tuple[int, int, int, float, NDArray[np.float64], int]:
    d = draw(st.integers(2, 12))
    L = draw(st.integers(2, 40))
    n = draw(st.integers(1, 160))
    C = draw(st.sampled_from([0.1, 1.0, 10.0, 100.0]))
    weights = np.array(draw(st.lists(st.floats(0.2, 20.0), min_size=4, max_size=4)))
    seed = draw(st.integers(0, 2**31 - 1))
    return d, L, n, C, weights, seed


@settings(max_examples=60, deadline=None)
@given(streams(), st.sampled_from([1, 50]), st.sampled_from(["sigmoid", "tanh"]))
def test_rls_equals_batch_ridge(
    case: tuple[int, int, int, float, NDArray[np.float64], int], block: int, activation: str
) -> None:
    d, L, n, C, weights, seed = case
    rng = np.random.default_rng(seed)
    hidden = HiddenLayer.generate(d, L, seed=seed, activation=activation)  # type: ignore[arg-type]
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0)
    y = rng.integers(0, 4, size=n)
    learner = OSELM(hidden, CLASSES, C=C, class_weight=weights)
    if block == 1:
        for x, label in zip(X, y, strict=True):
            learner.learn_one(x, int(label))
    else:
        for i in range(0, n, block):
            learner.learn_many(X[i : i + block], y[i : i + block])
    expected = batch_ridge(hidden.transform(X), y, weights, C, 4)
    assert np.max(np.abs(learner.beta_ - expected)) <= 1e-8
    # The learner's statistics are H^T W H and H^T W T of the same data.
    H = hidden.transform(X)
    w = weights[y]
    T = np.zeros((n, 4))
    T[np.arange(n), y] = 1.0
    stats = learner.statistics()
    np.testing.assert_allclose(stats.U, H.T @ (H * w[:, None]), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(stats.V, H.T @ (T * w[:, None]), rtol=1e-12, atol=1e-10)
    assert stats.n == n
    assert stats.class_counts.tolist() == np.bincount(y, minlength=4).tolist()
    # The exact re-solve from the statistics lands on the same solution.
    np.testing.assert_allclose(stats.solve(C), expected, atol=1e-8)


def test_mixed_one_and_block_updates_match_batch() -> None:
    rng = np.random.default_rng(7)
    hidden = HiddenLayer.generate(8, 64, seed=3)
    X = rng.normal(size=(500, 8))
    y = rng.integers(0, 4, size=500)
    w = balanced_class_weights(np.bincount(y, minlength=4))
    learner = OSELM(hidden, CLASSES, C=5.0, class_weight=w, resolve_every=137)
    i = 0
    sizes = [1, 50, 3, 1, 77, 2]
    while i < len(y):
        k = sizes[i % len(sizes)]
        learner.learn_many(X[i : i + k], y[i : i + k])
        i += k
    expected = batch_ridge(hidden.transform(X), y, w, 5.0, 4)
    assert np.max(np.abs(learner.beta_ - expected)) <= 1e-8


def test_hidden_path_equals_feature_path() -> None:
    rng = np.random.default_rng(1)
    hidden = HiddenLayer.generate(5, 20, seed=9)
    X = rng.normal(size=(30, 5))
    y = rng.integers(0, 4, size=30)
    a = OSELM(hidden, CLASSES)
    b = a.clone()
    a.learn_many(X, y)
    b.learn_hidden_many(hidden.transform(X), y)
    np.testing.assert_array_equal(a.beta_, b.beta_)
    np.testing.assert_allclose(a.predict_many(X), b.predict_hidden_many(hidden.transform(X)))
    np.testing.assert_allclose(a.predict_one(X[0]), a.predict_many(X[:1])[0])


def test_statistics_are_additive_across_devices() -> None:
    """Summing two devices' statistics solves to the pooled fit (what exact federation does)."""
    rng = np.random.default_rng(2)
    hidden = HiddenLayer.generate(6, 32, seed=4)
    X = rng.normal(size=(200, 6))
    y = rng.integers(0, 4, size=200)
    a, b = OSELM(hidden, CLASSES, C=2.0), OSELM(hidden, CLASSES, C=2.0)
    a.learn_many(X[:120], y[:120])
    b.learn_many(X[120:], y[120:])
    pooled = a.statistics() + b.statistics()
    expected = batch_ridge(hidden.transform(X), y, np.ones(4), 2.0, 4)
    np.testing.assert_allclose(pooled.solve(2.0), expected, atol=1e-9)
    c = OSELM(hidden, CLASSES, C=2.0)
    c.adopt(pooled.solve(2.0), pooled)
    c.learn_one(X[0], int(y[0]))
    both = np.vstack([X, X[:1]])
    both_y = np.concatenate([y, y[:1]])
    np.testing.assert_allclose(
        c.beta_, batch_ridge(hidden.transform(both), both_y, np.ones(4), 2.0, 4), atol=1e-9
    )
    delta = (a.statistics() + b.statistics()) - b.statistics()
    np.testing.assert_allclose(delta.U, a.statistics().U, atol=1e-10)
    zero = SufficientStatistics.zeros(32, 4)
    assert (zero + a.statistics()).n == 120


def test_forgetting_keeps_covariance_bounded_and_positive_definite() -> None:
    """lambda = 0.99 over 100,000 near-identical beats: no windup, P stays SPD and bounded."""
    rng = np.random.default_rng(0)
    d, L, C = 10, 64, 1.0
    hidden = HiddenLayer.generate(d, L, seed=11)
    learner = OSELM(hidden, CLASSES, C=C, forgetting=0.99)
    base = rng.normal(size=d)
    n, block = 100_000, 50
    for i in range(0, n, block):
        X = base + 1e-6 * rng.normal(size=(block, d))
        learner.learn_many(X, np.zeros(block, dtype=np.intp))
        if i % 20_000 == 0:
            learner.learn_one(base, 0)  # the one-at-a-time path forgets too
    P = learner.covariance()
    np.testing.assert_array_equal(P, P.T)
    eig = np.linalg.eigvalsh(P)
    assert eig.min() > 0.0
    assert np.trace(P) <= learner.trace_limit_ / 0.99**block + 1e-9
    assert np.isfinite(learner.beta_).all()
    # And it still predicts the class it saw.
    assert int(np.argmax(learner.predict_one(base))) == 0


def test_forgetting_without_guard_would_wind_up() -> None:
    """The guard matters: with it disabled (huge bound) trace(P) explodes on the same data."""
    rng = np.random.default_rng(0)
    hidden = HiddenLayer.generate(4, 16, seed=1)
    base = rng.normal(size=4)
    guarded = OSELM(hidden, CLASSES, forgetting=0.95)
    unguarded = OSELM(hidden, CLASSES, forgetting=0.95, max_trace=1e300)
    for _ in range(400):
        x = base + 1e-7 * rng.normal(size=4)
        guarded.learn_one(x, 1)
        unguarded.learn_one(x, 1)
    assert np.trace(unguarded.covariance()) > 1e6 * np.trace(guarded.covariance())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"C": 0.0}, "C must be positive"),
        ({"forgetting": 1.5}, "forgetting must be in"),
        ({"class_weight": [1.0, 2.0]}, "class_weight must be 4"),
        ({"class_weight": [1.0, -1.0, 1.0, 1.0]}, "class_weight must be 4"),
        ({"resolve_every": -1}, "resolve_every"),
    ],
)
def test_bad_parameters_are_refused_clearly(kwargs: dict[str, object], message: str) -> None:
    learner = OSELM(HiddenLayer.generate(3, 4, seed=0), CLASSES, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(LearnerError, match=message):
        learner.learn_one(np.zeros(3), 0)


def test_bad_inputs_are_refused_and_leave_state_unchanged() -> None:
    learner = OSELM(HiddenLayer.generate(3, 4, seed=0), CLASSES)
    learner.learn_one(np.ones(3), 1)
    before = learner.beta_.copy()
    with pytest.raises(LearnerError, match=r"x must have shape \(3,\)"):
        learner.learn_one(np.zeros(4), 0)
    with pytest.raises(LearnerError, match="label must be an integer"):
        learner.learn_one(np.zeros(3), 7)
    with pytest.raises(LearnerError, match="labels must be integers"):
        learner.learn_many(np.zeros((2, 3)), np.array([0, 9]))
    with pytest.raises(LearnerError, match="finite"):
        learner.learn_hidden_one(np.array([np.nan, 0, 0, 0]), 0)
    np.testing.assert_array_equal(learner.beta_, before)
    assert learner.n_seen_ == 1


def test_a_huge_block_is_split_and_still_exact() -> None:
    """learn_many over thousands of beats keeps memory bounded and equals the batch fit."""
    rng = np.random.default_rng(5)
    hidden = HiddenLayer.generate(4, 16, seed=2)
    X = rng.normal(size=(3000, 4))
    y = rng.integers(0, 4, size=3000)
    learner = OSELM(hidden, CLASSES, C=1.0).learn_many(X, y)
    expected = batch_ridge(hidden.transform(X), y, np.ones(4), 1.0, 4)
    assert np.max(np.abs(learner.beta_ - expected)) <= 1e-8
