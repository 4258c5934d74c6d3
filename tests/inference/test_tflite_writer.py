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


@pytest.mark.parametrize("replicas", [1, 2])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_int8_model_is_close_and_full_integer(activation: Activation, replicas: int) -> None:
    X = raw_features(600, 24, seed=3)
    layer = HiddenLayer.generate(24, 64, seed=5, activation=activation).with_scaling(
        X.mean(axis=0), X.std(axis=0)
    )
    model = int8_model(layer, calibrate(layer, X[:300], replicas=replicas))
    # One output step is 1/256 (sigmoid) or 1/128 (tanh); rounding of x, W and z adds a few.
    step = 1 / 256 if activation == "sigmoid" else 1 / 128
    H, it = _run(model, X[:300])
    err = np.abs(H - layer.transform(X[:300]))
    # The rarest 0.01 % of inputs and some pre-activations are clipped by design.
    assert np.quantile(err, 0.999) <= 4 * step
    assert err.max() <= 0.1
    # Unseen inputs may lie outside the calibrated range and be clipped: bound the mean.
    H_new, _ = _run(model, X[300:])
    assert np.abs(H_new - layer.transform(X[300:])).mean() <= 2 * step
    by_name = {t["name"]: t for t in it.get_tensor_details()}
    assert by_name["W_t_q"]["dtype"] == np.int8
    assert list(by_name["W_t_q"]["shape"]) == [replicas * 64, replicas * 24]
    assert by_name["b_q"]["dtype"] == np.int32
    # One weight scale for the whole tensor: the form every int8 NPU takes.
    assert len(set(by_name["W_t_q"]["quantization_parameters"]["scales"].tolist())) == 1
    out_scale = by_name["h_q"]["quantization_parameters"]["scales"][0]
    assert out_scale == pytest.approx(step)
    # Every tensor between QUANTIZE and DEQUANTIZE is integer: the part an NPU takes. The
    # float ones are the input map before it and the replicas' average after it.
    floats = {n for n, t in by_name.items() if t["dtype"] == np.float32}
    plain = {"h", "x", "x_c", "x_center", "x_inv_scale", "x_n"}
    assert floats == (
        plain if replicas == 1 else plain | {"x_replicas", "h_replicas", "h_by_replica"}
    )
    for name in ("x_q", "z_q", "h_q"):
        assert by_name[name]["dtype"] == np.int8


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_int16x8_model_is_much_closer(activation: Activation) -> None:
    X = raw_features(600, 24, seed=3)
    layer = HiddenLayer.generate(24, 64, seed=5, activation=activation).with_scaling(
        X.mean(axis=0), X.std(axis=0)
    )
    cal = calibrate(layer, X[:300], replicas=1)
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
    # One weight scale per hidden unit (axis 0 of the [out, in] weights).
    q = by_name["W_t_q"]["quantization_parameters"]
    assert q["quantized_dimension"] == 0
    assert np.allclose(q["scales"], cal.w_scales, rtol=1e-6)
    assert len(set(q["scales"].tolist())) > 1


def test_models_are_deterministic(scaled_layer: HiddenLayer) -> None:
    X = raw_features(100, 24, seed=9)
    assert float_model(scaled_layer) == float_model(scaled_layer)
    assert int8_model(scaled_layer, X) == int8_model(scaled_layer, calibrate(scaled_layer, X))
    assert int16x8_model(scaled_layer, X) == int16x8_model(scaled_layer, X)
    assert float_model(scaled_layer)[4:8] == b"TFL3"


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
    for replicas in (0, 5, 1.5, True):
        with pytest.raises(ModelWriteError, match="replicas"):
            calibrate(scaled_layer, np.zeros((10, 24)), replicas=replicas)  # type: ignore[arg-type]
