"""Fixtures of the inference tests: an issuer key and small layers with calibration data."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey, key_id


@pytest.fixture(scope="session")
def issuer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def trusted(issuer: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {key_id(issuer): issuer.public_key()}


def raw_features(n: int, d: int, seed: int) -> NDArray[np.float64]:
    """Features on different scales with offsets, like raw beat features (amplitudes, RR)."""
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.2, 3.0, d)
    offset = np.linspace(-1.0, 2.0, d)
    return rng.standard_normal((n, d)) * scale + offset


@pytest.fixture(scope="session")
def scaled_layer() -> HiddenLayer:
    """A 24 -> 64 layer with the features' standardisation folded in, as bundles carry it."""
    X = raw_features(500, 24, seed=1)
    return HiddenLayer.generate(24, 64, seed=7).with_scaling(X.mean(axis=0), X.std(axis=0))
