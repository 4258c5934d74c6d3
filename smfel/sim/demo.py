"""The quick demonstration: train the learner on synthetic beats and evaluate it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent import OSELM, HiddenLayer, balanced_class_weights
from smfel.sim.metrics import confusion_matrix, report

__all__ = ["run_synthetic_demo", "synthetic_beats"]

CLASSES = ("N", "S", "V", "F")


def synthetic_beats(
    n: int, *, seed: int, proportions: tuple[float, ...] = (0.88, 0.04, 0.06, 0.02)
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Beat windows (n, 64) plus two RR features, drawn from class-shaped templates."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(CLASSES), size=n, p=np.asarray(proportions) / sum(proportions))
    t = np.linspace(-1.0, 1.0, 64)
    width = np.array([0.05, 0.05, 0.14, 0.09])[y][:, None]
    amp = np.array([1.0, 0.9, 1.4, 1.1])[y][:, None]
    wave = amp * np.exp(-((t[None, :] / width) ** 2))
    p_wave = np.where(y[:, None] == 2, 0.0, 0.15) * np.exp(-(((t[None, :] + 0.5) / 0.08) ** 2))
    X = wave + p_wave + rng.normal(0, 0.05, size=(n, 64))
    rr_prev = np.array([1.0, 0.7, 0.75, 0.9])[y] + rng.normal(0, 0.05, n)
    rr_next = np.array([1.0, 1.15, 1.25, 1.05])[y] + rng.normal(0, 0.05, n)
    return np.column_stack([X, rr_prev, rr_next]), y.astype(np.intp)


def run_synthetic_demo(n_hidden: int = 256, seed: int = 1) -> dict[str, Any]:
    X, y = synthetic_beats(20_000, seed=seed)
    Xt, yt = synthetic_beats(5_000, seed=seed + 1)
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-9
    hidden = HiddenLayer.generate(X.shape[1], n_hidden, seed=seed).with_scaling(mean, std)
    weights = balanced_class_weights(np.bincount(y, minlength=len(CLASSES)))
    learner = OSELM(hidden, CLASSES, C=10.0, class_weight=weights)
    t0 = time.perf_counter()
    for i in range(0, len(y), 50):
        learner.learn_many(X[i : i + 50], y[i : i + 50])
    seconds = time.perf_counter() - t0
    pred = learner.predict_many(Xt).argmax(axis=1)
    out = report(confusion_matrix(yt, pred, len(CLASSES)), CLASSES)
    out["train_seconds"] = seconds
    out["train_beats"] = len(y)
    return out
