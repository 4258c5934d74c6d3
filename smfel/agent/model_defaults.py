"""The beat classifier's default hyper-parameters, chosen in one place.

Chosen by leave-one-patient-out cross-validation inside the MIT-BIH DS1 records only
(``smfel-sim evaluate --cv``), maximising the j-kappa index and the S and V figures; the DS2
test records played no part. Every caller (the evaluation, the fleet simulation, the model
issuer) imports these so that they all build the same model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.agent.hidden import Activation
from smfel.agent.learner import balanced_class_weights

__all__ = [
    "CLASS_WEIGHT_FACTORS",
    "CLASS_WEIGHT_POWER",
    "DEFAULT_ACTIVATION",
    "DEFAULT_C",
    "DEFAULT_CLASSES",
    "DEFAULT_HIDDEN",
    "DEFAULT_SEED",
    "default_class_weights",
]

DEFAULT_HIDDEN = 100
"""Hidden units L."""

DEFAULT_C = 0.1
"""Ridge parameter: the objective adds ``||beta||^2 / C``. With the patient-relative features
0.1 did slightly better than 0.01, 1 and 10 on patients left out (j-index 0.679 against 0.662,
0.672 and 0.663 with detected beats, mean of five hidden-layer seeds)."""

DEFAULT_ACTIVATION: Activation = "sigmoid"

DEFAULT_CLASSES: tuple[str, ...] = ("N", "S", "V", "F")
"""The AAMI classes the model predicts (Q, paced or unclassifiable beats, is left out)."""

DEFAULT_SEED = 1
"""Seed of the random hidden layer the issuer draws."""

CLASS_WEIGHT_POWER = 0.7
"""Class-weight policy: balanced weights ``n / (K n_k)`` raised to this power (1 = fully
balanced, 0 = unweighted), computed from the training beats' class counts ... Fully balanced
weights (S beats weighted about 50 times N beats) called 1 in 30 normal beats of unseen
patients supraventricular; at 0.7 the cross-validated j-index rose from 0.651 to 0.679 (S
sensitivity 78% to 71%, S +P 27% to 32%; mean of five seeds, detected beats, C = 0.1); 0.6
and 0.8 both gave 0.672."""

CLASS_WEIGHT_FACTORS: dict[str, float] = {"F": 0.3}
"""... then multiplied by these factors. Fusion beats (F, under 1% of beats, 370 of DS1's 415
in one record) at full weight pulled many N and V beats of unseen patients into F; at 0.3 the
cross-validated j-index rose from 0.52 to 0.55 with the earlier features. With the current
features and power the model no longer calls beats of unseen patients F (F sensitivity 0 in
cross-validation); a factor of 1 gave F sensitivity 10% at +P 6% and a j-index of 0.672
instead of 0.679. The j-index does not count F, and no published inter-patient method
recognises F beats reliably either."""


def default_class_weights(
    counts: ArrayLike, classes: Sequence[str] = DEFAULT_CLASSES
) -> NDArray[np.float64]:
    """The class weights of the default policy for these per-class beat counts."""
    w = balanced_class_weights(counts) ** CLASS_WEIGHT_POWER
    factors = np.array([CLASS_WEIGHT_FACTORS.get(c, 1.0) for c in classes])
    if factors.shape != w.shape:
        raise ValueError(f"{len(classes)} classes but {len(w)} counts")
    return np.asarray(w * factors, dtype=np.float64)
