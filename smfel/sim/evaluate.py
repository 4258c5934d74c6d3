"""``smfel-sim evaluate``: inter-patient evaluation of the beat classifier on WFDB records.

Train the ELM (:class:`smfel.agent.OSELM`, learned block by block with RLS, which gives the
exact weighted ridge solution) on the beats of the train records and classify the beats of the
test records, patients the model never saw: the inter-patient protocol of de Chazal et al.,
IEEE TBME 51(7) (2004), DS1 for training and DS2 for testing by default. Results are reported
per AAMI class (N, S, V, F) as sensitivity and positive predictivity, with accuracy and the
j-kappa index of Mondejar-Guerra et al. (2019). Q beats (paced or unclassifiable, 8 in DS1 and
7 in DS2) are left out of this 4-class evaluation, as is usual.

With ``beats="detected"`` beats come from our own QRS detector, as on a device: detected beats
are scored against the reference label they match within 150 ms; reference beats no detection
matched (``missed``) and detections that matched no reference beat (``extra``) are counted
and reported, and cannot be scored in the confusion matrix.

:func:`cross_validate` is leave-one-patient-out cross-validation inside a set of records (the
way the defaults in :mod:`smfel.agent.model_defaults` were chosen inside DS1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from smfel.agent import OSELM, HiddenLayer
from smfel.agent.hidden import Activation
from smfel.agent.model_defaults import (
    DEFAULT_ACTIVATION,
    DEFAULT_C,
    DEFAULT_CLASSES,
    DEFAULT_HIDDEN,
    DEFAULT_SEED,
    default_class_weights,
)
from smfel.sensors import RecordBeats, load_record_beats, missing_records
from smfel.sensors.errors import RecordError
from smfel.sim.metrics import confusion_matrix, report

__all__ = ["cross_validate", "evaluate", "fit", "format_evaluation", "load_beats"]

log = logging.getLogger(__name__)

Beats = Literal["annotated", "detected"]
BLOCK = 512  # beats per RLS block update


def load_beats(
    data_dir: str | Path, records: Sequence[str], beats: Beats, lead: str = "MLII"
) -> list[RecordBeats]:
    """Beats of each record; an error names every record missing from ``data_dir``."""
    missing = missing_records(data_dir, records)
    if missing:
        raise RecordError(str(data_dir), f"records not found: {', '.join(missing)}")
    return [load_record_beats(data_dir, r, beats=beats, lead=lead) for r in records]


def _stack(
    recs: Sequence[RecordBeats], classes: Sequence[str]
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    parts = [rb.select(classes) for rb in recs]
    X = np.vstack([p[0] for p in parts]) if parts else np.zeros((0, 0))
    y = np.concatenate([p[1] for p in parts]).astype(np.intp) if parts else np.zeros(0, np.intp)
    return X, y


def fit(
    X: NDArray[np.float64],
    y: NDArray[np.intp],
    *,
    classes: Sequence[str] = DEFAULT_CLASSES,
    hidden: int = DEFAULT_HIDDEN,
    C: float = DEFAULT_C,
    activation: Activation = DEFAULT_ACTIVATION,
    seed: int = DEFAULT_SEED,
) -> OSELM:
    """An OSELM trained on ``X``, ``y``: scaling from ``X`` folded into the hidden layer,
    class weights by the default policy from the class counts, learned in blocks of
    :data:`BLOCK` beats."""
    if len(y) == 0:
        raise ValueError("no training beats")
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    layer = HiddenLayer.generate(X.shape[1], hidden, seed=seed, activation=activation)
    counts = np.bincount(y, minlength=len(classes))
    weights = default_class_weights(counts, classes)
    learner = OSELM(layer.with_scaling(mean, std), classes, C=C, class_weight=weights)
    for i in range(0, len(y), BLOCK):
        learner.learn_many(X[i : i + BLOCK], y[i : i + BLOCK])
    return learner


def _scores(y: NDArray[np.intp], pred: NDArray[np.intp], classes: Sequence[str]) -> dict[str, Any]:
    rep = report(confusion_matrix(y, pred, len(classes)), classes)
    return {
        "classes": {c: {"se": v["se"], "ppv": v["ppv"]} for c, v in rep["classes"].items()},
        "accuracy": rep["accuracy"],
        "j_index": rep["j_index"],
        "confusion": rep["confusion"],
    }


def evaluate(
    data_dir: str | Path,
    train: Sequence[str],
    test: Sequence[str],
    beats: Beats = "detected",
    **params: Any,
) -> dict[str, Any]:
    """Train on ``train``, test on ``test``; the JSON the command writes."""
    overlap = sorted(set(train) & set(test))
    if overlap:
        raise ValueError(f"records in both train and test: {overlap}")
    classes = tuple(params.get("classes", DEFAULT_CLASSES))
    missing = missing_records(data_dir, [*train, *test])
    if missing:
        raise RecordError(str(data_dir), f"records not found: {', '.join(missing)}")
    train_beats = load_beats(data_dir, train, beats)
    test_beats = load_beats(data_dir, test, beats)
    X, y = _stack(train_beats, classes)
    t0 = time.perf_counter()
    learner = fit(X, y, **params)
    seconds = time.perf_counter() - t0
    Xt, yt = _stack(test_beats, classes)
    pred = learner.predict_many(Xt).argmax(axis=1) if len(yt) else np.zeros(0, np.intp)
    out: dict[str, Any] = {"train": list(train), "test": list(test), "beats": beats}
    out.update(_scores(yt, pred, classes))
    out["train_seconds"] = seconds
    out["missed"] = sum(rb.missed for rb in test_beats)
    out["extra"] = sum(rb.extra for rb in test_beats)
    return out


def cross_validate(
    data_dir: str | Path,
    records: Sequence[str],
    beats: Beats = "annotated",
    *,
    seeds: Sequence[int] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Leave-one-patient-out: each record is tested by a model trained on all the others;
    the pooled predictions are scored (plus per-record accuracy).

    With ``seeds``, the whole cross-validation is repeated with each hidden-layer seed on the
    same beats (loaded once): the result is the first seed's, plus ``"seeds"`` with every
    seed's scores and their mean. One random layer moves the j-index by about 0.01, more than
    many of the differences a feature or hyper-parameter choice makes, so choices are made on
    the mean."""
    classes = tuple(params.get("classes", DEFAULT_CLASSES))
    recs = load_beats(data_dir, records, beats)
    runs = list(seeds) if seeds else [params.pop("seed", DEFAULT_SEED)]
    params.pop("seed", None)
    results = [_lopo(recs, classes, seed=s, **params) for s in runs]
    out: dict[str, Any] = {
        "records": list(records),
        "beats": beats,
        "folds": "leave-one-patient-out",
        "seed": runs[0],
    }
    out.update(results[0])
    if seeds:
        out["seeds"] = _seed_summary(runs, results, classes)
    return out


def _lopo(recs: Sequence[RecordBeats], classes: Sequence[str], **params: Any) -> dict[str, Any]:
    parts = [rb.select(classes) for rb in recs]
    y_all: list[NDArray[np.intp]] = []
    p_all: list[NDArray[np.intp]] = []
    per: dict[str, Any] = {}
    for k, rb in enumerate(recs):
        X = np.vstack([p[0] for j, p in enumerate(parts) if j != k])
        y = np.concatenate([p[1] for j, p in enumerate(parts) if j != k])
        learner = fit(X, y, **params)
        Xt, yt = parts[k]
        pred = learner.predict_many(Xt).argmax(axis=1) if len(yt) else np.zeros(0, np.intp)
        y_all.append(yt)
        p_all.append(pred)
        per[rb.record] = {
            "beats": len(yt),
            "accuracy": float((pred == yt).mean()) if len(yt) else None,
        }
        log.info("fold %s: %d beats, accuracy %s", rb.record, len(yt), per[rb.record]["accuracy"])
    out = _scores(np.concatenate(y_all), np.concatenate(p_all), classes)
    out["per_record"] = per
    return out


def _seed_summary(
    seeds: Sequence[int], results: Sequence[dict[str, Any]], classes: Sequence[str]
) -> dict[str, Any]:
    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return float(np.mean(known)) if known and len(known) == len(values) else None

    runs = [
        {
            "seed": s,
            "classes": r["classes"],
            "accuracy": r["accuracy"],
            "j_index": r["j_index"],
        }
        for s, r in zip(seeds, results, strict=True)
    ]
    js = [r["j_index"] for r in results]
    return {
        "runs": runs,
        "mean": {
            "classes": {
                c: {k: mean([r["classes"][c][k] for r in results]) for k in ("se", "ppv")}
                for c in classes
            },
            "accuracy": mean([r["accuracy"] for r in results]),
            "j_index": mean(js),
        },
        "j_index_sd": None if any(j is None for j in js) else float(np.std(js)),
    }


def format_evaluation(res: dict[str, Any]) -> str:
    """The table the command prints."""

    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{100 * v:6.1f}"

    lines = ["class    Se%    +P%"]
    for name, c in res["classes"].items():
        lines.append(f"{name:5s} {pct(c['se'])} {pct(c['ppv'])}")
    acc, j = res["accuracy"], res["j_index"]
    lines.append(
        f"accuracy {'-' if acc is None else f'{acc:.3f}'}  j-index {'-' if j is None else f'{j:.3f}'}"
    )
    names = list(res["classes"])
    lines.append("confusion (rows reference, columns predicted): " + " ".join(names))
    for name, row in zip(names, res["confusion"], strict=True):
        lines.append(f"  {name} " + " ".join(f"{v:6d}" for v in row))
    if res.get("beats") == "detected" and "missed" in res:
        lines.append(
            f"detector: {res['missed']} reference beats missed, {res['extra']} extra detections"
        )
    seeds = res.get("seeds")
    if seeds:
        m = seeds["mean"]
        figures = " ".join(
            f"{name} {pct(c['se']).strip()}/{pct(c['ppv']).strip()}"
            for name, c in m["classes"].items()
        )
        sd = seeds["j_index_sd"]
        lines.append(
            f"mean of {len(seeds['runs'])} hidden-layer seeds: Se/+P% {figures}, accuracy "
            f"{_num(m['accuracy'])}, j-index {_num(m['j_index'])}"
            + ("" if sd is None else f" (sd {sd:.3f})")
        )
    lines.append("(Q beats are excluded from the 4-class evaluation)")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"
