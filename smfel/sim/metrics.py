"""Beat classification metrics in the AAMI convention (ANSI/AAMI EC57).

Per class: sensitivity ``Se = TP / (TP + FN)`` and positive predictivity ``+P = TP / (TP + FP)``.
Mar's j-index (Mar et al., IEEE TBME 58(3), 2011) is ``j = Se_S + Se_V + P_S + P_V`` (at most 4).
The ``j_index`` reported here is the j-kappa index of Mondejar-Guerra et al., Biomed. Signal
Process. Control 47 (2019): ``kappa / 2 + j / 8`` in [0, 1] with Cohen's kappa, the figure their
0.773 and de Chazal's 0.612 are quoted in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ClassReport", "confusion_matrix", "report"]

ClassReport = dict[str, Any]


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> NDArray[np.int64]:
    """Rows are the reference class, columns the predicted class."""
    t = np.asarray(y_true, dtype=np.intp)
    p = np.asarray(y_pred, dtype=np.intp)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def report(cm: NDArray[np.int64], classes: Sequence[str]) -> dict[str, Any]:
    """Per-class Se and +P, accuracy and j-index from a confusion matrix."""
    per: dict[str, ClassReport] = {}
    for i, name in enumerate(classes):
        tp = int(cm[i, i])
        fn = int(cm[i].sum() - tp)
        fp = int(cm[:, i].sum() - tp)
        per[name] = {
            "se": _ratio(tp, tp + fn),
            "ppv": _ratio(tp, tp + fp),
            "tp": tp,
            "fn": fn,
            "fp": fp,
        }
    total = int(cm.sum())
    acc = float(np.trace(cm) / total) if total else None

    def z(v: float | None) -> float:
        return 0.0 if v is None else v

    kappa = None
    if total:
        pe = float((cm.sum(axis=0) * cm.sum(axis=1)).sum()) / total**2
        kappa = (acc - pe) / (1.0 - pe) if pe < 1.0 and acc is not None else 0.0
    j = None
    jk = None
    if "S" in per and "V" in per:
        j = z(per["S"]["se"]) + z(per["V"]["se"]) + z(per["S"]["ppv"]) + z(per["V"]["ppv"])
        if kappa is not None:
            jk = 0.5 * kappa + 0.125 * j
    return {
        "classes": per,
        "accuracy": acc,
        "j_index": jk,
        "j": j,
        "kappa": kappa,
        "confusion": cm.tolist(),
    }
