"""Leave-one-patient-out cross-validation repeated over hidden-layer seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from smfel.sim.evaluate import cross_validate, format_evaluation

RECORDS = ["101", "106", "119"]  # N beats everywhere, V beats in 106 and 119


@pytest.mark.mitdb
def test_seeds_repeat_the_cross_validation_and_average_it(mitdb: Path) -> None:
    res = cross_validate(mitdb, RECORDS, "annotated", seeds=[3, 4], hidden=20)
    single = cross_validate(mitdb, RECORDS, "annotated", seed=3, hidden=20)
    # The headline figures are the first seed's, exactly as a single run gives them.
    assert res["seed"] == single["seed"] == 3
    assert res["confusion"] == single["confusion"]
    assert res["j_index"] == single["j_index"]
    runs = res["seeds"]["runs"]
    assert [r["seed"] for r in runs] == [3, 4]
    other = cross_validate(mitdb, RECORDS, "annotated", seed=4, hidden=20)
    assert runs[1]["j_index"] == other["j_index"]
    assert runs[0]["j_index"] != runs[1]["j_index"]  # a different random layer
    mean = res["seeds"]["mean"]
    assert mean["j_index"] == pytest.approx((single["j_index"] + other["j_index"]) / 2)
    assert mean["accuracy"] == pytest.approx((single["accuracy"] + other["accuracy"]) / 2)
    v = [single["classes"]["V"]["se"], other["classes"]["V"]["se"]]
    assert mean["classes"]["V"]["se"] == pytest.approx(np.mean(v))
    assert res["seeds"]["j_index_sd"] == pytest.approx(
        abs(single["j_index"] - other["j_index"]) / 2
    )
    # No F beat in these records: their mean sensitivity is unknown, not zero.
    assert mean["classes"]["F"]["se"] is None
    assert "mean of 2 hidden-layer seeds" in format_evaluation(res)
    assert "seeds" not in single
