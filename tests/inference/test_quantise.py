"""Calibration of the integer models, checked against the real LiteRT interpreter."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from ai_edge_litert import interpreter as litert
from numpy.typing import NDArray

from smfel.agent.hidden import Activation, HiddenLayer
from smfel.agent.quantise import DEFAULT_REPLICAS, calibrate, emulate_int8
from smfel.agent.tflite_writer import int8_model
from tests.inference.conftest import raw_features

pytestmark = pytest.mark.device


def _run(model: bytes, X: NDArray[np.float64]) -> NDArray[np.float64]:
    it = litert.Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    i = it.get_input_details()[0]["index"]
    o = it.get_output_details()[0]["index"]
    H = np.empty((X.shape[0], it.get_output_details()[0]["shape"][1]))
    for k, x in enumerate(X):
        it.set_tensor(i, x[None, :].astype(np.float32))
        it.invoke()
        H[k] = it.get_tensor(o)[0]
    return H


def _layer(activation: Activation) -> tuple[HiddenLayer, NDArray[np.float64]]:
    X = raw_features(2000, 24, seed=3)
    layer = HiddenLayer.generate(24, 64, seed=5, activation=activation)
    return layer.with_scaling(X.mean(axis=0), X.std(axis=0)), X


@pytest.mark.parametrize("replicas", [1, 2, 3])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_emulation_is_what_the_interpreter_computes(activation: Activation, replicas: int) -> None:
    """The range search trusts the emulation; the interpreter must compute the same ``h``."""
    layer, X = _layer(activation)
    cal = calibrate(layer, X[:1000], replicas=replicas)
    H = _run(int8_model(layer, cal), X[1000:])
    diff = np.abs(H - emulate_int8(layer, cal, X[1000:]))
    # Only rare near-ties may round the other way: in the fixed-point requantisation, or in the
    # reference kernels' fixed-point activation (LiteRT's XNNPACK int8 kernels match exactly
    # on x86_64; tflite_runtime's reference kernels differ on about 0.2 % of the values). One
    # pre-activation step is up to 4 output steps where the activation is steepest.
    step = 1 / 256 if activation == "sigmoid" else 1 / 128
    assert np.mean(diff > 1e-6) <= 5e-3
    assert diff.max() <= 4 * step
    assert np.abs(H - layer.transform(X[1000:])).max() > 1e-4  # it is an integer model


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_replicas_shrink_the_error(activation: Activation) -> None:
    layer, X = _layer(activation)
    ref = layer.transform(X[1000:])
    err = {
        k: np.abs(_run(int8_model(layer, calibrate(layer, X[:1000], replicas=k)), X[1000:]) - ref)
        for k in (1, 2, 4)
    }
    assert err[2].mean() <= 0.8 * err[1].mean()
    assert err[4].mean() <= err[2].mean()
    assert DEFAULT_REPLICAS == 2


def test_calibration_standardises_and_clips_saturation(scaled_layer: HiddenLayer) -> None:
    X = np.abs(raw_features(2000, 24, seed=2)) + 5.0  # all inputs positive, far from 0
    cal = calibrate(scaled_layer, X)
    Xn = (X - cal.center) * cal.inv_scale
    # Standardised features, scaled so that all but the rarest 0.01 % fall into [-1, 1].
    assert np.allclose(Xn.mean(axis=0), 0.0, atol=1e-6)
    assert np.allclose(Xn.std(axis=0), Xn.std(axis=0)[0], rtol=1e-5)
    assert 0.9998 <= np.mean(np.abs(Xn) <= 1.0) < 1.0
    x_scale, x_zero = cal.x
    lo, hi = (-128 - x_zero) * x_scale, (127 - x_zero) * x_scale
    assert lo == pytest.approx(-1.0, abs=x_scale)
    assert hi == pytest.approx(1.0, abs=x_scale)
    z_scale, z_zero = cal.z
    # The pre-activation range never exceeds the sigmoid's useful range (+-6).
    assert (127 - z_zero) * z_scale <= 6.0 + z_scale
    assert (-128 - z_zero) * z_scale >= -6.0 - z_scale
    assert cal.n_samples == 2000
    assert cal.replicas == DEFAULT_REPLICAS
    assert set(cal.as_dict()) >= {"x_scale", "z_scale", "replicas", "n_samples"}


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_chosen_pre_activation_range_beats_fixed_ones(
    scaled_layer: HiddenLayer, replicas: int
) -> None:
    X = raw_features(2000, 24, seed=4)
    cal = calibrate(scaled_layer, X, replicas=replicas)
    ref = scaled_layer.transform(X)

    def mse(z: tuple[float, int]) -> float:
        return float(np.mean((emulate_int8(scaled_layer, replace(cal, z=z), X) - ref) ** 2))

    chosen = mse(cal.z)
    for bound in (1.0, 3.0, 6.0):
        assert chosen <= mse((float(np.float32(2 * bound / 255)), 0))
