"""The model defaults the evaluation chose, as every caller imports them."""

from __future__ import annotations

import numpy as np
import pytest

from smfel.agent.model_defaults import (
    CLASS_WEIGHT_FACTORS,
    CLASS_WEIGHT_POWER,
    DEFAULT_CLASSES,
    DEFAULT_HIDDEN,
    default_class_weights,
)
from smfel.sensors import AAMI_CLASSES

pytestmark = pytest.mark.device


def test_classes_are_the_aami_classes_without_q() -> None:
    assert tuple(c for c in AAMI_CLASSES if c != "Q") == DEFAULT_CLASSES
    assert DEFAULT_HIDDEN > 0


def test_class_weights_lift_rare_classes_then_damp_fusion_beats() -> None:
    counts = np.array([9000, 300, 600, 100])
    w = default_class_weights(counts)
    total = w * counts
    # Rare classes weigh more per beat, and less in total than with fully balanced weights:
    # the total weight of a class grows as its count to the power 1 - CLASS_WEIGHT_POWER.
    assert w[1] > w[2] > w[0]
    assert 0.0 < CLASS_WEIGHT_POWER <= 1.0
    # ... then each class's factor scales it (the N class has none).
    assert "N" not in CLASS_WEIGHT_FACTORS
    for k in (1, 2, 3):
        f = CLASS_WEIGHT_FACTORS.get(DEFAULT_CLASSES[k], 1.0)
        assert total[k] / total[0] == pytest.approx(
            f * (counts[k] / counts[0]) ** (1 - CLASS_WEIGHT_POWER)
        )
    # An absent class keeps weight 1 (times its factor), so the vector is always usable.
    assert np.isfinite(default_class_weights([10, 0, 5, 0])).all()
    with pytest.raises(ValueError, match="4 classes but 3 counts"):
        default_class_weights([1, 2, 3])
