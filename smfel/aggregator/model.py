"""Issuing the shared model: the hidden layer every device of a federation uses.

``init_model`` draws the random layer once (Huang, Zhu and Siew 2006), folds the feature
standardisation measured on calibration beats into ``W`` and ``b``, and writes the signed model
bundle (:func:`smfel.agent.bundle.write_bundle`). Devices receive it and never regenerate it.

Calibration beats come from labelled records (MIT-BIH or any WFDB folder) or, by default, from
the synthetic ECG source (``synthetic://``), passed through the devices' own beat extractor, so
the scaling matches the features devices compute; nothing needs to be downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from smfel.agent.bundle import Manifest, write_bundle
from smfel.agent.hidden import Activation, HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, private_key_from_pem, private_key_to_pem
from smfel.agent.model_defaults import DEFAULT_ACTIVATION, DEFAULT_HIDDEN, DEFAULT_SEED
from smfel.agent.state import atomic_write
from smfel.sensors.beats import BeatExtractor
from smfel.sensors.records import load_record_beats
from smfel.sensors.sources import open_source

__all__ = [
    "IssuedModel",
    "calibration_features",
    "init_model",
    "load_or_create_key",
    "source_features",
]


def source_features(url: str) -> NDArray[np.float64]:
    """Features of every beat of an ECG source, through the devices' own beat extractor."""
    rows: list[NDArray[np.float64]] = []
    extractor: BeatExtractor | None = None
    with open_source(url) as source:
        for chunk in source:
            if extractor is None:
                extractor = BeatExtractor(chunk.fs)
            rows += [b.features for b in extractor.push(chunk)]
    if extractor is not None:
        rows += [b.features for b in extractor.flush()]
    if len(rows) < 2:
        raise ValueError(f"{url} gave fewer than two beats")
    return np.vstack(rows)


def calibration_features(
    data: str | os.PathLike[str] | None = None,
    records: Sequence[str] = (),
    *,
    seconds: float = 300.0,
    seed: int = 1,
) -> NDArray[np.float64]:
    """Calibration beats: MIT-BIH ``records`` from ``data``, or synthetic ECG by default."""
    if data is not None:
        if not records:
            raise ValueError("calibration from a WFDB folder needs a list of records")
        return np.vstack([load_record_beats(Path(data), r).X for r in records])
    return source_features(
        f"synthetic://?hr=75&pvc=0.08&apc=0.05&seed={seed}&duration={seconds}&speed=0"
    )


def load_or_create_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path`` (PKCS#8 PEM), created with mode 0600 when missing."""
    p = Path(path)
    if p.exists():
        try:
            return private_key_from_pem(p.read_bytes())
        except ValueError as err:
            raise ValueError(f"{p} does not hold an Ed25519 private key: {err}") from err
    key = Ed25519PrivateKey.generate()
    pem = private_key_to_pem(key)
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
    n_hidden: int = DEFAULT_HIDDEN,
    seed: int = DEFAULT_SEED,
    activation: Activation = DEFAULT_ACTIVATION,
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
    # An even stride through all calibration beats (the first 2,000 would be one record's).
    sample = X[:: max(1, X.shape[0] // 2000)]
    manifest = write_bundle(
        Path(directory), hidden, signing_key=signing_key, calibration=sample if int8 else None
    )
    return IssuedModel(Path(directory), manifest, hidden)
