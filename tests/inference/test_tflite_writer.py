"""The .tflite writer, checked by running its models in the real LiteRT interpreter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ai_edge_litert import interpreter as litert
from numpy.typing import NDArray

from smfel.agent.hidden import Activation, HiddenLayer
from smfel.agent.tflite_writer import (
    ModelWriteError,
    calibrate,
    float_model,
    int8_model,
    int16x8_model,
)
from tests.inference.conftest import raw_features

pytestmark = pytest.mark.device


def _run(model: bytes, X: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
    it = litert.Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    i = it.get_input_details()[0]["index"]
    o = it.get_output_details()[0]["index"]
    H = np.empty((X.shape[0], it.get_output_details()[0]["shape"][1]))
    for k, x in enumerate(X):
        it.set_tensor(i, x[None, :].astype(np.float32))
        it.invoke()
        H[k] = it.get_tensor(o)[0]
    return H, it


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_float_model_matches_numpy(activation: Activation) -> None:
    X = raw_features(300, 24, seed=3)
    layer = HiddenLayer.generate(24, 64, seed=5, activation=activation).with_scaling(
        X.mean(axis=0), X.std(axis=0)
    )
    H, it = _run(float_model(layer), X)
    assert np.abs(H - layer.transform(X)).max() <= 1e-5
    details = it.get_input_details()[0]
    assert list(details["shape"]) == [1, 24]
    assert details["dtype"] == np.float32
    assert list(it.get_output_details()[0]["shape"]) == [1, 64]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_int8_model_is_close_and_full_integer(activation: Activation) -> None:
    X = raw_features(600, 24, seed=3)
    layer = HiddenLayer.generate(24, 64, seed=5, activation=activation).with_scaling(
        X.mean(axis=0), X.std(axis=0)
    )
    model = int8_model(layer, X[:300])
    # One output step is 1/256 (sigmoid) or 1/128 (tanh); rounding of x, W and z adds a few.
    step = 1 / 256 if activation == "sigmoid" else 1 / 128
    H, it = _run(model, X[:300])
    err = np.abs(H - layer.transform(X[:300]))
    # The rarest 0.01 % of inputs and 0.1 % of pre-activations are clipped by design.
    assert np.quantile(err, 0.999) <= 4 * step
    assert err.max() <= 0.1
    # Unseen inputs may lie outside the calibrated range and be clipped: bound the mean.
    H_new, _ = _run(model, X[300:])
    assert np.abs(H_new - layer.transform(X[300:])).mean() <= 2 * step
    by_name = {t["name"]: t for t in it.get_tensor_details()}
    assert by_name["W_t_q"]["dtype"] == np.int8
    assert by_name["b_q"]["dtype"] == np.int32
    out_scale = by_name["h_q"]["quantization_parameters"]["scales"][0]
    assert out_scale == pytest.approx(step)
    # Every tensor between QUANTIZE and DEQUANTIZE is integer: the part an NPU takes.
    floats = sorted(n for n, t in by_name.items() if t["dtype"] == np.float32)
    assert floats == ["h", "x", "x_c", "x_center", "x_inv_scale", "x_n"]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_int16x8_model_is_much_closer(activation: Activation) -> None:
    X = raw_features(600, 24, seed=3)
    layer = HiddenLayer.generate(24, 64, seed=5, activation=activation).with_scaling(
        X.mean(axis=0), X.std(axis=0)
    )
    cal = calibrate(layer, X[:300])
    ref = layer.transform(X[300:])
    err16 = np.abs(_run(int16x8_model(layer, cal), X[300:])[0] - ref)
    err8 = np.abs(_run(int8_model(layer, cal), X[300:])[0] - ref)
    assert err16.mean() <= err8.mean() / 3  # the int8 weights now dominate the error
    assert err16.max() <= 0.01
    it = _run(int16x8_model(layer, cal), X[:1])[1]
    by_name = {t["name"]: t for t in it.get_tensor_details()}
    for name in ("x_q", "z_q", "h_q"):
        assert by_name[name]["dtype"] == np.int16
        assert list(by_name[name]["quantization_parameters"]["zero_points"]) == [0]
    assert by_name["W_t_q"]["dtype"] == np.int8
    assert by_name["b_q"]["dtype"] == np.int64


def test_models_are_deterministic(scaled_layer: HiddenLayer) -> None:
    X = raw_features(100, 24, seed=9)
    assert float_model(scaled_layer) == float_model(scaled_layer)
    assert int8_model(scaled_layer, X) == int8_model(scaled_layer, calibrate(scaled_layer, X))
    assert int16x8_model(scaled_layer, X) == int16x8_model(scaled_layer, X)
    assert float_model(scaled_layer)[4:8] == b"TFL3"


def test_calibration_standardises_and_clips_saturation(scaled_layer: HiddenLayer) -> None:
    X = np.abs(raw_features(2000, 24, seed=2)) + 5.0  # all inputs positive, far from 0
    cal = calibrate(scaled_layer, X)
    Xn = (X - cal.center) * cal.inv_scale
    assert np.allclose(Xn.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(Xn.std(axis=0), 1.0, atol=1e-5)
    x_scale, x_zero = cal.x
    lo, hi = (-128 - x_zero) * x_scale, (127 - x_zero) * x_scale
    # Symmetric around 0, holding all but the rarest 0.01 % of the standardised values.
    assert lo == pytest.approx(-hi, abs=x_scale)
    assert 0.9998 <= np.mean(np.abs(Xn) <= hi + x_scale) < 1.0
    z_scale, z_zero = cal.z
    # The pre-activation range never exceeds the sigmoid's useful range (+-6).
    assert (127 - z_zero) * z_scale <= 6.0 + z_scale
    assert (-128 - z_zero) * z_scale >= -6.0 - z_scale
    assert cal.n_samples == 2000
    assert set(cal.as_dict()) >= {"x_scale", "w_scale", "z_scale", "n_samples"}


def test_bad_calibration_is_refused(scaled_layer: HiddenLayer) -> None:
    with pytest.raises(ModelWriteError, match=r"\(n, 24\)"):
        int8_model(scaled_layer, np.zeros((10, 23)))
    with pytest.raises(ModelWriteError, match=r"\(n, 24\)"):
        int8_model(scaled_layer, np.zeros((0, 24)))
    bad = np.zeros((10, 24))
    bad[3, 4] = np.nan
    with pytest.raises(ModelWriteError, match="finite"):
        int8_model(scaled_layer, bad)
    with pytest.raises(ModelWriteError, match="finite"):
        int16x8_model(scaled_layer, bad)
