"""Post-training quantisation of the hidden layer: integer parameters chosen on real beats.

The integer models (:mod:`smfel.agent.tflite_writer`) compute ``h = g(x W + b)`` as
``x -> x_n -> QUANTIZE -> FULLY_CONNECTED -> LOGISTIC|TANH -> DEQUANTIZE``. This module chooses
their parameters from calibration beats and emulates the int8 arithmetic in numpy, so that the
choice minimises the error the interpreter will actually make:

* the features are standardised by float ops (mean and standard deviation of the calibration
  beats; raw beat features live on very different scales, and an int8 tensor has one scale)
  and scaled so that ``_INPUT_QUANTILE`` of the standardised values fall into [-1, 1];
* int8 weights have one scale (TFLite also runs per-unit scales on FULLY_CONNECTED, but for
  these random layers they gave the same class agreement, and one scale suits every NPU); the
  16x8 model's weights have one scale per hidden unit (per-axis quantisation; Krishnamoorthi,
  "Quantizing deep convolutional networks for efficient inference: a whitepaper", 2018), which
  lowers its error, the int8 weights being its largest source of error;
* the pre-activation range is the pair of calibration tail quantiles whose emulated int8 ``h``
  is closest (mean squared error) to the float ``h`` on the calibration beats: it trades the
  clipping of rare values against coarser steps for all others;
* ``replicas`` K > 1 quantises every feature K times and computes every hidden unit K times,
  each copy shifted by a different fraction (1/K apart) of one int8 step, and averages the
  copies (the input copies in the int32 accumulator, the unit copies after DEQUANTIZE). The
  average of K staircases offset by 1/K step is a staircase K times finer, so the rounding of
  the int8 input, pre-activation and output shrinks (non-subtractive dither by replication;
  Gray and Stockham, "Dithered quantizers", IEEE Trans. Inf. Theory 39(3), 1993). The integer
  part stays one FULLY_CONNECTED (K^2 times the multiply-adds) and one LOGISTIC|TANH.

The arithmetic is that of Jacob et al., "Quantization and training of neural networks for
efficient integer-arithmetic-only inference", CVPR 2018. :func:`emulate_int8` rounds like the
TFLite kernels except for the fixed-point requantisation multiplier; LiteRT's outputs agree with
it except for rare one-step ties.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.agent.errors import SmfelError
from smfel.agent.hidden import HiddenLayer

__all__ = [
    "DEFAULT_REPLICAS",
    "MAX_REPLICAS",
    "OUTPUT_QUANT",
    "Calibration",
    "Int8Layer",
    "ModelWriteError",
    "calibrate",
    "emulate_int8",
    "int8_layer",
    "normalised_layer",
]

F64 = NDArray[np.float64]
I8 = NDArray[np.int8]

#: The integer LOGISTIC and TANH kernels accept only these output (scale, zero point) pairs.
OUTPUT_QUANT = {
    "int8": {"sigmoid": (1.0 / 256.0, -128), "tanh": (1.0 / 128.0, 0)},
    "int16x8": {"sigmoid": (1.0 / 32768.0, 0), "tanh": (1.0 / 32768.0, 0)},
}
#: Share of the standardised calibration values inside the int8 input range. Lower quantiles
#: give finer steps but clip the beats of unseen patients more often (measured on MIT-BIH DS1).
_INPUT_QUANTILE = 0.9999
#: Tail probabilities tried for each end of the int8 pre-activation range.
_Z_TAILS = (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
#: Pre-activations beyond these bounds give an output within one int8 output step of
#: saturation; the int16 kernels take inputs up to +-8 (their fixed-point input format).
_SATURATION = {"sigmoid": 6.0, "tanh": 3.2}
_SATURATION_16 = 8.0
#: int16 has steps to spare: its ranges are twice the largest calibration value, so beats of
#: other patients are rarely clipped.
_HEADROOM_16 = 2.0
#: Beats used by the pre-activation range search (an even stride through the calibration set).
_SEARCH_BEATS = 2048
MAX_REPLICAS = 4
#: Two copies: on MIT-BIH DS1 (two folds of patients, eight hidden layers drawn) int8 class
#: agreement with float32 rose from 98.7-99.3 % to 99.2-99.5 %, for about 0.3 us more per
#: beat at 29 -> 100; four copies reached 99.4-99.6 % at K^2 = 16 times the multiply-adds.
DEFAULT_REPLICAS = 2


class ModelWriteError(SmfelError, ValueError):
    """A model could not be written from the given layer or calibration data."""


@dataclass(frozen=True, slots=True, eq=False)
class Calibration:
    """What the integer models need from calibration data.

    ``center`` and ``inv_scale`` (d,) map the features' calibrated range onto [-1, 1];
    ``x`` and ``z`` are the int8 (scale, zero point) pairs of that input and of the
    pre-activation, ``w_scales`` (L,) the per-unit weight scales (the int8 model uses their
    maximum, the 16x8 model each of them), ``replicas`` the number of
    offset copies of each feature and unit in the int8 model; ``x_bound`` and ``z_bound`` are
    the symmetric ranges of the int16 tensors of the 16x8 model.
    """

    center: F64
    inv_scale: F64
    x: tuple[float, int]
    w_scales: F64
    z: tuple[float, int]
    replicas: int
    x_bound: float
    z_bound: float
    n_samples: int

    def as_dict(self) -> dict[str, object]:
        return {
            "x_scale": self.x[0],
            "x_zero_point": self.x[1],
            "w_scale_min": float(self.w_scales.min()),
            "w_scale_max": float(self.w_scales.max()),
            "z_scale": self.z[0],
            "z_zero_point": self.z[1],
            "replicas": self.replicas,
            "x_bound": self.x_bound,
            "z_bound": self.z_bound,
            "n_samples": self.n_samples,
        }


@dataclass(frozen=True, slots=True, eq=False)
class Int8Layer:
    """The int8 model's tensors, replicas included (K = ``replicas``).

    ``center`` and ``inv_scale`` (K d,) are the float input map of the K input copies (copy
    ``k`` shifted by its offset); ``w_q`` (K L, K d) and ``b_q`` (K L,) the FULLY_CONNECTED's
    integer weights and biases with their per-unit scales ``w_scales`` and ``b_scales``.
    """

    center: F64
    inv_scale: F64
    w_q: I8
    w_scales: F64
    b_q: F64
    b_scales: F64


def _f32(a: ArrayLike) -> F64:
    """Values as the model stores them (float32), kept as float64."""
    out: F64 = np.asarray(a, dtype=np.float32).astype(np.float64)
    return out


def _asymmetric(lo: float, hi: float) -> tuple[float, int]:
    """int8 (scale, zero point) for the range [lo, hi], widened to hold 0 exactly."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    scale = (hi - lo) / 255.0
    zero = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return float(np.float32(scale)), zero


def normalised_layer(hidden: HiddenLayer, center: F64, inv_scale: F64) -> tuple[F64, F64]:
    """``W', b'`` with ``x W + b == ((x - center) * inv_scale) W' + b'``."""
    return hidden.W / inv_scale[:, None], hidden.b + center @ hidden.W


def _offsets(replicas: int) -> F64:
    """The replicas' shifts in int8 steps: centred, 1/K apart (0 for one copy)."""
    return (np.arange(replicas) + 0.5) / replicas - 0.5


def _bias_q(b: F64, b_scales: F64, z_scale: float, replicas: int) -> F64:
    """Integer biases (K L,): unit copy ``k``'s pre-activation shifted by its offset in steps."""
    shifts = _offsets(replicas)[:, None] * z_scale
    out: F64 = np.round((b[None, :] + shifts) / b_scales).reshape(-1)
    return out


def int8_layer(hidden: HiddenLayer, cal: Calibration) -> Int8Layer:
    """The int8 model's input map, weights and biases for ``cal``."""
    K = cal.replicas
    W, b = normalised_layer(hidden, cal.center, cal.inv_scale)
    # Input copy k: x_n + offset_k * s_x, written as a shifted center.
    center = _f32(np.concatenate([cal.center - o * cal.x[0] / cal.inv_scale for o in _offsets(K)]))
    s_w = float(cal.w_scales.max())
    w_q = np.clip(np.round(W.T / s_w), -127, 127).astype(np.int8)
    # The K input copies sum in the accumulator: each carries 1/K of the weight.
    w_scales = _f32(np.full(K * hidden.n_hidden, s_w / K))
    b_scales = _f32(np.float32(cal.x[0]) * w_scales.astype(np.float32))
    return Int8Layer(
        center=center,
        inv_scale=np.tile(cal.inv_scale, K),
        w_q=np.tile(w_q, (K, K)),
        w_scales=w_scales,
        b_q=_bias_q(b, b_scales[: hidden.n_hidden], cal.z[0], K),
        b_scales=b_scales,
    )


def _products(layer: Int8Layer, cal: Calibration, X: F64) -> F64:
    """The FULLY_CONNECTED's accumulators without the bias (n, L), for one unit copy."""
    xn = X.astype(np.float32)[:, None, :] - layer.center.astype(np.float32).reshape(
        cal.replicas, -1
    )
    xn *= layer.inv_scale.astype(np.float32).reshape(cal.replicas, -1)
    s_x, zp_x = cal.x
    xq = np.clip(np.round(xn.astype(np.float64) / s_x) + zp_x, -128, 127) - zp_x
    L = layer.w_q.shape[0] // cal.replicas
    d = layer.w_q.shape[1] // cal.replicas
    out: F64 = xq.sum(axis=1) @ layer.w_q[:L, :d].T.astype(np.float64)
    return out


def _lookup_table(z: tuple[float, int], activation: str) -> F64:
    """The dequantised int8 activation output for each of the 256 int8 inputs (as TFLite
    builds its table: dequantise, apply the function, round to the output step, clamp)."""
    s_z, zp_z = z
    v = (np.arange(-128, 128) - zp_z) * s_z
    g = 1.0 / (1.0 + np.exp(-v)) if activation == "sigmoid" else np.tanh(v)
    s_h, zp_h = OUTPUT_QUANT["int8"][activation]
    out: F64 = (np.clip(np.round(g / s_h) + zp_h, -128, 127) - zp_h) * s_h
    return out


def _outputs(P: F64, b_q: F64, b_scales: F64, z: tuple[float, int], activation: str) -> F64:
    """``h`` (n, L) from products: add biases, requantise, look up, average the unit copies."""
    s_z, zp_z = z
    KL = b_q.shape[0]
    n, L = P.shape
    acc = np.tile(P, KL // L) + b_q
    acc *= b_scales / s_z
    np.round(acc, out=acc)
    zq = np.clip(acc, -128 - zp_z, 127 - zp_z).astype(np.intp) + (128 + zp_z)
    out: F64 = _lookup_table(z, activation)[zq].reshape(n, KL // L, L).mean(axis=1)
    return out


def emulate_int8(hidden: HiddenLayer, cal: Calibration, X: ArrayLike) -> F64:
    """``h`` (n, L) as the int8 model of ``cal`` computes it, in numpy."""
    layer = int8_layer(hidden, cal)
    P = _products(layer, cal, np.asarray(X, dtype=np.float64))
    return _outputs(P, layer.b_q, layer.b_scales, cal.z, hidden.activation)


def calibrate(
    hidden: HiddenLayer, calibration: ArrayLike, *, replicas: int = DEFAULT_REPLICAS
) -> Calibration:
    """Quantisation parameters from ``calibration`` feature vectors (n, d): real beats.

    ``replicas`` (1 to ``MAX_REPLICAS``) offset copies of each feature and hidden unit in the
    int8 model (see the module docstring); the int16x8 model always has one.
    """
    X = np.asarray(calibration, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != hidden.n_features or X.shape[0] < 1:
        raise ModelWriteError(
            f"calibration must be an (n, {hidden.n_features}) array with n >= 1, got {X.shape}"
        )
    if not np.isfinite(X).all():
        raise ModelWriteError("calibration data must be finite")
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ModelWriteError(f"replicas must be an integer, got {replicas!r}")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ModelWriteError(f"replicas must be in 1..{MAX_REPLICAS}, got {replicas}")
    center = _f32(X.mean(axis=0))
    sd = X.std(axis=0)
    standard = (X - center) / np.where(sd > 0, sd, 1.0)
    T = max(float(np.quantile(np.abs(standard), _INPUT_QUANTILE)), 1e-6)
    inv_scale = _f32(1.0 / (np.where(sd > 0, sd, 1.0) * T))
    W, b = normalised_layer(hidden, center, inv_scale)
    Xn = (X - center) * inv_scale
    z_max = float(np.abs(Xn @ W + b).max())
    cal = Calibration(
        center=center,
        inv_scale=inv_scale,
        x=_asymmetric(-1.0, 1.0),
        w_scales=_f32(np.maximum(np.abs(W).max(axis=0), 1e-12) / 127.0),
        z=(1.0, 0),  # placeholder for the search below
        replicas=replicas,
        x_bound=max(float(np.abs(Xn).max()) * _HEADROOM_16, 1e-6),
        z_bound=min(max(z_max * _HEADROOM_16, 1e-6), _SATURATION_16),
        n_samples=int(X.shape[0]),
    )
    sample = X[:: max(1, X.shape[0] // _SEARCH_BEATS)]
    return replace(cal, z=_search_z_range(hidden, cal, sample))


def _search_z_range(hidden: HiddenLayer, cal: Calibration, X: F64) -> tuple[float, int]:
    """The pre-activation (scale, zero point) whose emulated ``h`` is closest to the float one.

    Both ends of the range are searched among tail quantiles of the pre-activations of ``X``,
    clipped to the activation's useful range.
    """
    layer = int8_layer(hidden, cal)
    P = _products(layer, cal, X)
    W, b = normalised_layer(hidden, cal.center, cal.inv_scale)
    Z = ((X - cal.center) * cal.inv_scale) @ W + b
    ref = hidden.transform(X)
    bound = _SATURATION[hidden.activation]
    lows = np.clip(np.quantile(Z, _Z_TAILS), -bound, bound)
    highs = np.clip(np.quantile(Z, [1.0 - p for p in _Z_TAILS]), -bound, bound)
    best: tuple[float, tuple[float, int]] | None = None
    for lo in lows:
        for hi in highs:
            z = _asymmetric(float(lo), float(hi))
            b_q = _bias_q(b, layer.b_scales[: hidden.n_hidden], z[0], cal.replicas)
            h = _outputs(P, b_q, layer.b_scales, z, hidden.activation)
            err = float(np.mean((h - ref) ** 2))
            if best is None or err < best[0]:
                best = (err, z)
    assert best is not None
    return best[1]
