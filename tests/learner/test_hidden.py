"""The hidden layer: generated once, then data with a content hash."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smfel.agent import HiddenLayer, LearnerError

pytestmark = pytest.mark.device


def test_same_seed_same_layer_and_hash() -> None:
    a = HiddenLayer.generate(10, 32, seed=42)
    b = HiddenLayer.generate(10, 32, seed=42)
    c = HiddenLayer.generate(10, 32, seed=43)
    assert a == b and a.content_hash == b.content_hash
    assert a != c and a.content_hash != c.content_hash
    assert a.content_hash.startswith("sha256:") and a.content_hash.endswith(":sigmoid")


def test_layer_is_read_only() -> None:
    a = HiddenLayer.generate(3, 4, seed=1)
    with pytest.raises(ValueError, match="read-only"):
        a.W[0, 0] = 1.0


def test_dict_round_trip_through_json_is_exact() -> None:
    a = HiddenLayer.generate(7, 9, seed=3, activation="tanh")
    b = HiddenLayer.from_dict(json.loads(json.dumps(a.to_dict())))
    assert b == a
    assert b.W.tobytes() == a.W.tobytes()
    d = a.to_dict()
    d["activation"] = "sigmoid"
    with pytest.raises(LearnerError, match="content hash mismatch"):
        HiddenLayer.from_dict(d)


def test_scaling_folds_into_weights() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(50, 6))
    mean, std = X.mean(axis=0), X.std(axis=0)
    a = HiddenLayer.generate(6, 12, seed=2)
    folded = a.with_scaling(mean, std)
    np.testing.assert_allclose(folded.transform(X), a.transform((X - mean) / std), atol=1e-12)


def test_activations_match_their_definitions() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 4)) * 50  # saturating inputs must not overflow
    s = HiddenLayer.generate(4, 8, seed=0)
    t = HiddenLayer(s.W, s.b, "tanh")
    Z = X @ s.W + s.b
    with np.errstate(over="ignore"):
        np.testing.assert_allclose(s.transform(X), 1.0 / (1.0 + np.exp(-Z)), atol=1e-15)
    np.testing.assert_allclose(t.transform(X), np.tanh(Z), atol=1e-15)
    np.testing.assert_allclose(s.transform_one(X[0]), s.transform(X[:1])[0])


@pytest.mark.parametrize(
    ("W", "b", "act", "msg"),
    [
        (np.ones(3), np.ones(3), "sigmoid", "W must be a"),
        (np.ones((2, 3)), np.ones(2), "sigmoid", r"b must have shape \(3,\)"),
        (np.ones((2, 3)), np.ones(3), "relu", "activation must be one of"),
        (np.full((2, 3), np.nan), np.ones(3), "sigmoid", "finite"),
    ],
)
def test_bad_layers_are_refused(W: np.ndarray, b: np.ndarray, act: str, msg: str) -> None:
    with pytest.raises(LearnerError, match=msg):
        HiddenLayer(W, b, act)  # type: ignore[arg-type]
