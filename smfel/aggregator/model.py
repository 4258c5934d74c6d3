"""Issuing the shared model: the hidden layer every device of a federation uses.

``init_model`` draws the random layer once (Huang, Zhu and Siew 2006), folds the feature
standardisation measured on calibration beats into ``W`` and ``b``, and writes the signed model
bundle (:func:`smfel.agent.bundle.write_bundle`). Devices receive it and never regenerate it.

Calibration beats come from labelled records (MIT-BIH or any WFDB folder) or, by default, from
:func:`synthetic_beats`: class-shaped templates (a narrow QRS with a P wave for N, an early beat
for S, a wide QRS without P wave for V, an intermediate fusion shape for F) plus RR intervals,
enough to run the whole system with nothing to download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import serialization
from numpy.typing import NDArray

from smfel.agent.bundle import Manifest, write_bundle
from smfel.agent.hidden import Activation, HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey
from smfel.agent.state import atomic_write

__all__ = [
    "CLASSES",
    "IssuedModel",
    "init_model",
    "load_or_create_key",
    "synthetic_beats",
]

CLASSES = ("N", "S", "V", "F")


def synthetic_beats(
    n: int,
    *,
    seed: int,
    proportions: tuple[float, ...] = (0.88, 0.04, 0.06, 0.02),
    noise: float = 0.05,
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """``n`` synthetic beats: a 64-sample window plus previous and next RR (66 features)."""
    rng = np.random.default_rng(seed)
    p = np.asarray(proportions, dtype=np.float64)
    y = rng.choice(len(CLASSES), size=n, p=p / p.sum())
    t = np.linspace(-1.0, 1.0, 64)
    width = np.array([0.05, 0.05, 0.14, 0.09])[y][:, None] * rng.uniform(0.85, 1.15, (n, 1))
    amp = np.array([1.0, 0.9, 1.4, 1.1])[y][:, None] * rng.uniform(0.8, 1.2, (n, 1))
    wave = amp * np.exp(-((t[None, :] / width) ** 2))
    p_wave = np.where(y[:, None] == 2, 0.0, 0.15) * np.exp(-(((t[None, :] + 0.5) / 0.08) ** 2))
    X = wave + p_wave + rng.normal(0, noise, size=(n, 64))
    rr_prev = np.array([1.0, 0.7, 0.75, 0.9])[y] + rng.normal(0, 0.06, n)
    rr_next = np.array([1.0, 1.15, 1.25, 1.05])[y] + rng.normal(0, 0.06, n)
    return np.column_stack([X, rr_prev, rr_next]), y.astype(np.intp)


def load_or_create_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PKCS#8 PEM), created with mode 0600 when missing."""
    p = Path(path)
    if p.exists():
        key = serialization.load_pem_private_key(p.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{p} does not hold an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, pem, 0o600)
    return key


@dataclass(frozen=True, slots=True)
class IssuedModel:
    directory: Path
    manifest: Manifest
    hidden: HiddenLayer

    @property
    def model_hash(self) -> str:
        return self.manifest.model_hash


def init_model(
    directory: str | os.PathLike[str],
    calibration: NDArray[np.float64],
    *,
    signing_key: Ed25519PrivateKey,
    n_hidden: int = 256,
    seed: int = 1,
    activation: Activation = "sigmoid",
    int8: bool = False,
) -> IssuedModel:
    """Generate the layer, fold in the calibration beats' scaling, write the signed bundle."""
    X = np.asarray(calibration, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2 or not np.isfinite(X).all():
        raise ValueError(f"calibration must be (n >= 2, d) finite features, got {X.shape}")
    std = X.std(axis=0)
    std[std < 1e-9] = 1.0
    hidden = HiddenLayer.generate(X.shape[1], n_hidden, seed=seed, activation=activation)
    hidden = hidden.with_scaling(X.mean(axis=0), std)
    manifest = write_bundle(
        Path(directory), hidden, signing_key=signing_key, calibration=X[:2000] if int8 else None
    )
    return IssuedModel(Path(directory), manifest, hidden)
