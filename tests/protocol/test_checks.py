"""Statistics bounds against statistics a real learner produces, and the nonce cache."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smfel.agent.hidden import HiddenLayer
from smfel.agent.learner import OSELM, balanced_class_weights
from smfel.agent.protocol import NonceCache, Reason, Rejected, check_statistics_bounds

pytestmark = pytest.mark.device
L, K, n = 24, 4, 300


def _learned(activation: str, weighted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 10))
    y = rng.choice(K, size=n, p=[0.85, 0.08, 0.05, 0.02])
    hidden = HiddenLayer.generate(10, L, seed=3, activation=activation)  # type: ignore[arg-type]
    weights = balanced_class_weights(np.bincount(y, minlength=K)) if weighted else None
    m = OSELM(hidden, class_weight=weights).learn_many(X, y)
    s = m.statistics()
    return s.U, s.V, s.class_counts


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("weighted", [False, True])
def test_real_statistics_pass(activation: str, weighted: bool) -> None:
    U, V, c = _learned(activation, weighted)
    check_statistics_bounds(U, V, n, L, activation, class_counts=c)


def _reason(U: np.ndarray, V: np.ndarray, nn: int = n, c: np.ndarray | None = None) -> Reason:
    with pytest.raises(Rejected) as info:
        check_statistics_bounds(U, V, nn, L, "sigmoid", class_counts=c)
    return info.value.reason


def test_forged_statistics_fail() -> None:
    U, V, c = _learned("sigmoid", False)
    assert _reason(U * 10, V) is Reason.OUT_OF_BOUNDS  # trace above n L
    assert _reason(U, V, nn=n // 10) is Reason.OUT_OF_BOUNDS  # too few beats for that mass
    bad = U.copy()
    bad[0, 1] += 1.0
    assert _reason(bad, V) is Reason.OUT_OF_BOUNDS  # not symmetric
    assert _reason(U - 5 * np.eye(L), V) is Reason.OUT_OF_BOUNDS  # not PSD
    flipped = V.copy()
    flipped[:, [0, 1]] = -V[:, [1, 0]]  # label flipping shows as V < 0 for a sigmoid layer
    assert _reason(U, flipped) is Reason.OUT_OF_BOUNDS
    boosted = V.copy()
    boosted[:, 2] *= 50  # V can no longer come from U (Cauchy-Schwarz)
    assert _reason(U, boosted) is Reason.OUT_OF_BOUNDS
    assert _reason(U, V, c=c * 2) is Reason.OUT_OF_BOUNDS  # labels above n
    assert _reason(U[:-1, :-1], V) is Reason.BAD_SHAPE
    nan = U.copy()
    nan[2, 2] = np.nan
    assert _reason(nan, V) is Reason.NOT_FINITE


def test_nonce_cache_refuses_replays_inside_its_window() -> None:
    cache = NonceCache(dt.timedelta(minutes=10), max_entries=3)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cache.check_and_add("k1", "a" * 32, now=t0)
    cache.check_and_add("k2", "a" * 32, now=t0)  # same nonce, other key: fine
    with pytest.raises(Rejected) as info:
        cache.check_and_add("k1", "a" * 32, now=t0 + dt.timedelta(minutes=5))
    assert info.value.reason is Reason.REPLAYED_NONCE
    cache.check_and_add("k1", "a" * 32, now=t0 + dt.timedelta(minutes=11))  # expired
    for i in range(5):
        cache.check_and_add("k3", f"{i:032x}", now=t0 + dt.timedelta(minutes=11))
    assert len(cache) == 3
