"""Beat features: what each group measures, amplitude invariance, causality, real records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smfel.sensors import FEATURE_NAMES, N_FEATURES, load_record_beats
from smfel.sensors.features import IRREGULAR_BEATS, BeatFeatures

FS = 360.0
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _beat(width: float = 0.012, sign: float = 1.0, p_wave: float = 0.15) -> np.ndarray:
    """A crude beat segment (mV): P wave, QRS of the given width (s) and sign, T wave."""
    f = BeatFeatures(FS)
    t = (np.arange(f.length) - f.pre) / FS

    def g(c: float, w: float, a: float) -> np.ndarray:
        return np.asarray(a * np.exp(-0.5 * ((t - c) / w) ** 2))

    out: np.ndarray = g(-0.16, 0.02, p_wave) + g(0.0, width, sign * 1.2) + g(0.28, 0.05, 0.3)
    return out


def _run(beats: list[tuple[np.ndarray, float, float]]) -> np.ndarray:
    f = BeatFeatures(FS)
    return np.array([f.update(seg, rp, rn) for seg, rp, rn in beats])


def test_names_match_the_vector() -> None:
    assert len(FEATURE_NAMES) == N_FEATURES == len(set(FEATURE_NAMES))
    out = _run([(_beat(), 0.8, 0.8)])
    assert out.shape == (1, N_FEATURES) and np.isfinite(out).all()


def test_steady_identical_beats_match_their_template_and_are_regular() -> None:
    X = _run([(_beat(), 0.8, 0.8)] * 40)
    assert X[-1, COL["corr_p"]] == pytest.approx(1.0)
    assert X[-1, COL["corr_p_rel"]] == pytest.approx(0.0, abs=1e-9)
    assert X[-1, COL["rr_prev_z"]] == pytest.approx(0.0)
    for name in ("rms_qrs_rel", "rms_t", "qrs_slope", "p_energy", "rr_local_msd", "rr_local_sd"):
        assert X[-1, COL[name]] == pytest.approx(0.0, abs=1e-12)
    assert X[-1, COL["rr_irr_fraction"]] == 0.0
    for name in ("rr_prev_n", "rr_next_n", "rr_local_n", "rr_prev_local", "rr_prev_next"):
        assert X[-1, COL[name]] == pytest.approx(1.0)


def test_a_premature_wide_inverted_beat_stands_out() -> None:
    normal = [(_beat(), 0.8, 0.8)] * 30
    pvc = (_beat(width=0.04, sign=-1.0, p_wave=0.0), 0.45, 1.15)
    X = _run([*normal, pvc, (_beat(), 1.15, 0.8)])
    n, v = X[-3], X[-2]
    assert v[COL["rms_qrs_rel"]] > 100.0 and n[COL["rms_qrs_rel"]] < 0.01
    # Three times as wide: its steepest step is about a third of the template's.
    assert v[COL["qrs_slope"]] < -0.9 and abs(n[COL["qrs_slope"]]) < 1e-9
    assert v[COL["corr_p"]] < 0.5 and n[COL["corr_p"]] > 0.99
    assert v[COL["rr_prev_local"]] < 0.6 and v[COL["rr_prev_next"]] < 0.5
    assert v[COL["rr_prev_n"]] < 0.6 and v[COL["rr_next_n"]] > 1.3
    # Early in a steady rhythm: many typical steps early (clipped).
    assert v[COL["rr_prev_z"]] == -10.0


def test_a_missing_p_wave_lowers_p_energy_and_keeps_the_qrs_slope() -> None:
    normal = [(_beat(), 0.8, 0.8)] * 30
    X = _run([*normal, (_beat(p_wave=0.0), 0.5, 1.0), (_beat(p_wave=0.3), 1.0, 0.8)])
    missing, doubled = X[-2], X[-1]
    assert missing[COL["p_energy"]] < -5.0
    # Twice the P-wave amplitude, four times its variance (the template barely moved).
    assert doubled[COL["p_energy"]] == pytest.approx(np.log(4.0), abs=0.1)
    assert abs(missing[COL["qrs_slope"]]) < 1e-6


def test_relative_morphology_discounts_a_patients_usual_noise() -> None:
    rng = np.random.default_rng(5)
    noisy = [(_beat() + rng.normal(0, 0.05, 240), 0.8, 0.8) for _ in range(60)]
    pvc = (_beat(width=0.04, sign=-1.0, p_wave=0.0) + rng.normal(0, 0.05, 240), 0.45, 1.15)
    X = _run([*noisy, pvc])
    n, v = X[-2], X[-1]
    # Every beat of a noisy record differs from the template; only the PVC differs much more
    # than the record's beats usually do.
    assert n[COL["rms_t"]] > 0.02
    assert 0.5 < n[COL["rms_qrs_rel"]] < 2.0
    assert v[COL["rms_qrs_rel"]] > 5.0
    assert v[COL["corr_p_rel"]] < n[COL["corr_p_rel"]] - 0.3


def test_prematurity_counts_less_in_an_irregular_rhythm() -> None:
    rng = np.random.default_rng(9)
    steady = [(_beat(), 0.8, 0.8)] * 40
    irregular = [(_beat(), float(rng.uniform(0.5, 1.1)), 0.8) for _ in range(40)]
    early = (_beat(), 0.6, 0.9)
    z_steady = _run([*steady, early])[-1, COL["rr_prev_z"]]
    z_irregular = _run([*irregular, early])[-1, COL["rr_prev_z"]]
    assert z_steady < -5.0 < z_irregular < 0.0


def test_premature_beats_stay_out_of_the_template() -> None:
    # Bigeminy: every other beat premature and inverted. The template stays the normal beat,
    # so the premature beats keep looking different from it.
    beats = [(_beat(), 0.8, 0.8)] * 10
    for _ in range(40):
        beats += [(_beat(sign=-1.0, width=0.03), 0.5, 1.1), (_beat(), 1.1, 0.5)]
    X = _run(beats)
    assert X[-2, COL["rms_qrs_rel"]] > 10.0 and X[-1, COL["rms_qrs_rel"]] < 2.0
    assert X[-2, COL["qrs_slope"]] < -0.5 and abs(X[-1, COL["qrs_slope"]]) < 0.1


def test_irregularity_separates_alternating_from_steady_rhythm() -> None:
    steady = _run([(_beat(), 0.8, 0.8)] * IRREGULAR_BEATS)
    alternating = _run(
        [(_beat(), 0.6 if i % 2 else 1.0, 1.0 if i % 2 else 0.6) for i in range(IRREGULAR_BEATS)]
    )
    assert steady[-1, COL["rr_irr_fraction"]] == 0.0
    assert alternating[-1, COL["rr_irr_fraction"]] == 1.0
    assert alternating[-1, COL["rr_irr_median"]] == pytest.approx(0.4 / 0.8)


@given(
    st.floats(0.05, 20.0),
    st.lists(st.floats(0.4, 1.6), min_size=3, max_size=60),
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=30, deadline=None)
def test_features_do_not_depend_on_the_signal_gain(gain: float, rr: list[float], seed: int) -> None:
    rng = np.random.default_rng(seed)
    segs = [_beat(width=rng.uniform(0.01, 0.04)) + rng.normal(0, 0.02, size=240) for _ in rr]
    beats = [(s, a, b) for s, a, b in zip(segs, rr, [*rr[1:], rr[0]], strict=True)]
    a = _run(beats)
    b = _run([(s * gain, x, y) for s, x, y in beats])
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_features_of_a_beat_use_only_the_past() -> None:
    rng = np.random.default_rng(3)
    beats = [(_beat() + rng.normal(0, 0.05, 240), rng.uniform(0.5, 1.2), 0.8) for _ in range(50)]
    whole = _run(beats)
    for k in (1, 7, 33):
        assert np.array_equal(_run(beats[:k]), whole[:k])


def test_segment_length_is_checked() -> None:
    with pytest.raises(ValueError, match="segment must have 240 samples"):
        BeatFeatures(FS).update(np.zeros(100), 0.8, 0.8)


@pytest.mark.mitdb
def test_real_ventricular_and_premature_atrial_beats_stand_out(mitdb: Path) -> None:
    # Record 119: 444 V beats among normal beats, long runs of them in bigeminy (the template
    # must stay the normal beat); record 220: 94 premature atrial (S) beats.
    rb = load_record_beats(mitdb, "119", beats="detected")
    rms = rb.X[:, COL["rms_qrs_rel"]]
    assert np.median(rms[rb.labels == "V"]) > 5.0
    assert 0.5 < np.median(rms[rb.labels == "N"]) < 2.0
    slope = rb.X[:, COL["qrs_slope"]]
    assert np.median(slope[rb.labels == "V"]) < -0.2
    assert abs(np.median(slope[rb.labels == "N"])) < 0.05
    rb = load_record_beats(mitdb, "220", beats="detected")
    early = rb.X[:, COL["rr_prev_local"]]
    assert np.median(early[rb.labels == "S"]) < 0.8
    assert np.median(early[rb.labels == "N"]) > 0.95
    # Both keep the normal QRS shape; the P wave of the S beats differs.
    slope = rb.X[:, COL["qrs_slope"]]
    assert abs(np.median(slope[rb.labels == "S"])) < 0.05
    corr_p = rb.X[:, COL["corr_p"]]
    assert np.median(corr_p[rb.labels == "S"]) < 0.5
    assert np.median(corr_p[rb.labels == "N"]) > 0.9
