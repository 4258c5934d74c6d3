"""Filter design and streaming filters of the device path, checked against scipy.signal.

scipy is the reference here (a test and server dependency); the device path itself must not
import it, which the last test checks in a fresh interpreter.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import signal
from scipy.ndimage import maximum_filter1d

from smfel.sensors import Chunk, Resampler, read_record
from smfel.sensors.design import butterworth_sos, kaiser_lowpass, notch_sos
from smfel.sensors.filters import BLOCK, SOSStream, cleaning_sos, qrs_band_sos
from smfel.sensors.qrs import _row_medians, _running_max

pytestmark = pytest.mark.device

RATES = [100.0, 128.0, 250.0, 256.0, 360.0, 500.0, 1000.0]


def _scipy_cleaning(fs: float) -> np.ndarray:
    parts = [signal.butter(2, 0.5, btype="highpass", fs=fs, output="sos")]
    for mains in (50.0, 60.0):
        if mains < 0.45 * fs:
            parts.append(signal.tf2sos(*signal.iirnotch(mains, 25.0, fs=fs)))
    parts.append(signal.butter(4, min(40.0, 0.45 * fs), btype="lowpass", fs=fs, output="sos"))
    return np.concatenate(parts)


@pytest.mark.parametrize("fs", RATES)
@pytest.mark.parametrize(
    ("order", "cutoff", "kind"),
    [
        (2, 0.5, "highpass"),
        (4, 40.0, "lowpass"),
        (2, [5.0, 15.0], "bandpass"),
        (6, 3.0, "highpass"),
        (8, 12.0, "lowpass"),
        (4, [1.0, 30.0], "bandpass"),
        (10, [0.5, 40.0], "bandpass"),
    ],
)
def test_butterworth_sections_equal_scipy(
    fs: float, order: int, cutoff: float | list[float], kind: str
) -> None:
    ours = butterworth_sos(order, cutoff, kind, fs)  # type: ignore[arg-type]
    ref = signal.butter(order, cutoff, btype=kind, fs=fs, output="sos")
    # Same sections in the same order (pairing, ordering and gain placement included).
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fs", RATES)
def test_notch_and_the_device_chains_equal_scipy(fs: float) -> None:
    for f0 in (50.0, 60.0, fs / 7.0):
        if f0 < fs / 2:
            b, a = signal.iirnotch(f0, 25.0, fs=fs)
            np.testing.assert_allclose(notch_sos(f0, 25.0, fs)[0], np.r_[b, a], rtol=0, atol=1e-15)
    np.testing.assert_allclose(cleaning_sos(fs), _scipy_cleaning(fs), rtol=0, atol=1e-12)
    ref = signal.butter(2, [5.0, 15.0], btype="bandpass", fs=fs, output="sos")
    np.testing.assert_allclose(qrs_band_sos(fs), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("up", "down"), [(18, 25), (36, 25), (9, 8), (1, 2), (3, 1), (5, 4)])
def test_kaiser_lowpass_equals_firwin(up: int, down: int) -> None:
    # The resampler's own filters: 24 taps per phase, cut-off at the lower Nyquist rate.
    n = 24 * up
    ours = kaiser_lowpass(n, 1.0 / max(up, down), 6.0)
    ref = signal.firwin(n, 1.0 / max(up, down), window=("kaiser", 6.0))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-15)
    assert ours.sum() == pytest.approx(1.0, abs=1e-15)
    odd = kaiser_lowpass(101, 0.3, 8.0)
    ref = signal.firwin(101, 0.3, window=("kaiser", 8.0))
    np.testing.assert_allclose(odd, ref, rtol=0, atol=1e-15)


def test_resampler_output_matches_a_scipy_polyphase_filter() -> None:
    # 500 -> 360 Hz: the same taps as firwin's, the same samples out (to rounding).
    x = np.random.default_rng(4).normal(size=3000)
    r = Resampler(500.0, 360.0)
    y = r.push(Chunk(0, 500.0, x)).samples
    h = signal.firwin(24 * r.up, 1.0 / max(r.up, r.down), window=("kaiser", 6.0)) * r.up
    up = np.zeros(len(x) * r.up)
    up[:: r.up] = x
    ref = np.convolve(up, h)[:: r.down][: len(y)]
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: butterworth_sos(3, 10.0, "lowpass", 360.0), "even number"),
        (lambda: butterworth_sos(2, 180.0, "lowpass", 360.0), "in \\(0, fs/2\\)"),
        (lambda: butterworth_sos(2, [15.0, 5.0], "bandpass", 360.0), "must increase"),
        (lambda: butterworth_sos(2, 5.0, "bandpass", 360.0), "takes 2 cut-off"),
        (lambda: butterworth_sos(2, 5.0, "bandstop", 360.0), "kind must be"),  # type: ignore[arg-type]
        (lambda: notch_sos(200.0, 25.0, 360.0), "notch frequency"),
        (lambda: notch_sos(50.0, 0.0, 360.0), "quality factor"),
        (lambda: kaiser_lowpass(24, 1.0, 6.0), "cutoff must be in"),
        (lambda: SOSStream(np.ones((2, 5))), "shape \\(sections, 6\\)"),
        (lambda: SOSStream(cleaning_sos(360.0), block=0), "block must be"),
    ],
)
def test_bad_designs_are_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def _noise(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Baseline wander, mains hum, a DC offset and white noise: every section has work to do.
    t = np.arange(n) / 360.0
    return (
        0.8 + 0.5 * np.sin(2 * np.pi * 0.2 * t) + 0.1 * np.sin(2 * np.pi * 50 * t)
        + rng.normal(scale=0.3, size=n)
    )  # fmt: skip


@pytest.mark.parametrize("block", [1, 7, 64, 128, 5000])
@pytest.mark.parametrize("which", ["cleaning", "band"])
def test_stream_agrees_with_sosfilt(block: int, which: str) -> None:
    sos = cleaning_sos(360.0) if which == "cleaning" else qrs_band_sos(360.0)
    x = _noise(20_000)
    y = SOSStream(sos, block=block)(x)
    ref = signal.sosfilt(sos, x)
    assert y.shape == x.shape
    assert np.max(np.abs(y - ref)) <= 1e-10


@pytest.mark.mitdb
def test_stream_agrees_with_sosfilt_on_a_whole_record(mitdb: Path) -> None:
    x = read_record(mitdb, "208").mv("MLII")  # 30 minutes, in mV
    for sos in (cleaning_sos(360.0), qrs_band_sos(360.0)):
        f = SOSStream(sos)
        y = np.concatenate([f(x[a : a + 360]) for a in range(0, len(x), 360)])
        assert np.max(np.abs(y - signal.sosfilt(sos, x))) <= 1e-9


_X = _noise(3000, seed=1)
_X[700:760] = 0.0  # exact zeros (a flat line) then negative samples, inside one block
_X[760:800] = -1.0
_WHOLE = {b: SOSStream(cleaning_sos(360.0), block=b)(_X) for b in (1, 100, BLOCK)}


@given(
    st.lists(st.integers(1, len(_X) - 1), max_size=60),
    st.sampled_from([1, 100, BLOCK]),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_chunking_gives_the_same_bits(cuts: list[int], block: int) -> None:
    f = SOSStream(cleaning_sos(360.0), block=block)
    bounds = [0, *sorted(set(cuts)), len(_X)]
    y = np.concatenate([f(_X[a:b]) for a, b in itertools.pairwise(bounds)] + [f(_X[:0])])
    assert y.tobytes() == _WHOLE[block].tobytes()


def test_sample_by_sample_gives_the_same_bits() -> None:
    f = SOSStream(qrs_band_sos(360.0))
    whole = SOSStream(qrs_band_sos(360.0))(_X)
    y = np.concatenate([f(_X[i : i + 1]) for i in range(len(_X))])
    assert y.tobytes() == whole.tobytes()


@given(
    st.lists(st.floats(-3, 3, allow_nan=False) | st.sampled_from([0.0, 1.0]), max_size=300),
    st.integers(0, 80),
)
@settings(max_examples=200, deadline=None)
def test_running_max_equals_a_nearest_mode_maximum_filter(values: list[float], r: int) -> None:
    a = np.array(values, dtype=np.float64)
    assert np.array_equal(_running_max(a, r), maximum_filter1d(a, 2 * r + 1, mode="nearest"))


@given(st.integers(1, 5), st.integers(1, 130), st.integers(0, 2**32 - 1))
@settings(max_examples=100, deadline=None)
def test_row_medians_equal_numpy(rows: int, width: int, seed: int) -> None:
    a = np.round(np.random.default_rng(seed).normal(size=(rows, width)), 1)  # ties too
    assert np.array_equal(_row_medians(a), np.median(a, axis=1, keepdims=True))
