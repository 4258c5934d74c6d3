"""A small ``.tflite`` writer for the ELM hidden layer, without TensorFlow.

The model computes only ``h = g(x W + b)``; the class scores ``h @ beta`` stay in numpy, so a new
``beta`` never changes the model (and never recompiles an NPU graph). Two variants:

* float32: ``x[1,d] -FULLY_CONNECTED(W^T, b)-> z[1,L] -LOGISTIC|TANH-> h[1,L]``;
* int8 with float input and output, the form NPU delegates take:
  ``x -SUB,MUL-> x_n -QUANTIZE-> FULLY_CONNECTED(int8) -> LOGISTIC|TANH(int8) -DEQUANTIZE-> h``;
  the two float elementwise ops standardise the features (see :func:`calibrate`),
  everything from QUANTIZE to DEQUANTIZE is integer-only;
* int16x8: the same graph with int16 activations and int8 weights, for when the int8 output
  step (1/256) changes too many class decisions.

The int8 arithmetic follows Jacob et al., "Quantization and training of neural networks for
efficient integer-arithmetic-only inference", CVPR 2018: symmetric per-tensor int8 weights,
int32 bias with scale ``s_x * s_w``, asymmetric activations whose ranges are calibrated on real
inputs. The file layout is the TFLite flatbuffer schema (``tflite`` package, generated from
``schema.fbs``); the model is serialised bottom-up with ``flatbuffers.Builder``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import flatbuffers
import numpy as np
import tflite
from numpy.typing import ArrayLike, NDArray

from smfel.agent.errors import SmfelError
from smfel.agent.hidden import HiddenLayer

__all__ = [
    "Calibration",
    "ModelWriteError",
    "QuantKind",
    "calibrate",
    "float_model",
    "int8_model",
    "int16x8_model",
]

F64 = NDArray[np.float64]

_OP = tflite.BuiltinOperator
_T = tflite.TensorType
# (builtin op, version) pairs; integer kernels need the versions that introduced their types.
_FLOAT_OPS = {"fc": (_OP.FULLY_CONNECTED, 1), "sigmoid": (_OP.LOGISTIC, 1), "tanh": (_OP.TANH, 1)}
_QUANT_OPS = {
    "int8": {
        "fc": (_OP.FULLY_CONNECTED, 4),
        "sigmoid": (_OP.LOGISTIC, 2),
        "tanh": (_OP.TANH, 2),
        "quantize": (_OP.QUANTIZE, 2),
        "dequantize": (_OP.DEQUANTIZE, 2),
    },
    "int16x8": {
        "fc": (_OP.FULLY_CONNECTED, 7),
        "sigmoid": (_OP.LOGISTIC, 3),
        "tanh": (_OP.TANH, 3),
        "quantize": (_OP.QUANTIZE, 3),
        "dequantize": (_OP.DEQUANTIZE, 4),
    },
}
_SUB, _MUL = (_OP.SUB, 1), (_OP.MUL, 1)
# The integer LOGISTIC and TANH kernels accept only these output parameters.
_OUTPUT = {
    "int8": {"sigmoid": (1.0 / 256.0, -128), "tanh": (1.0 / 128.0, 0)},
    "int16x8": {"sigmoid": (1.0 / 32768.0, 0), "tanh": (1.0 / 32768.0, 0)},
}
# Pre-activations beyond these bounds give an output within one output step of saturation, so
# the calibrated range is clipped to them and the int8 steps are spent where they matter. The
# int16 kernels take inputs up to +-8 (their fixed-point input format).
_SATURATION = {"sigmoid": 6.0, "tanh": 3.2}
_SATURATION_16 = 8.0
# Share of calibration values inside the int8 ranges (see calibrate).
_INPUT_QUANTILE = 0.9999
_Z_QUANTILES = (0.0005, 0.9995)
# int16 has steps to spare: its input range is twice the largest calibration value, so beats of
# other patients are rarely clipped.
_HEADROOM_16 = 2.0

QuantKind = Literal["int8", "int16x8"]


class ModelWriteError(SmfelError, ValueError):
    """A model could not be written from the given layer or calibration data."""


@dataclass(slots=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: int
    buffer: int = 0
    quant: tuple[float, int] | None = None


@dataclass(slots=True)
class _Graph:
    """Plain lists of what the flatbuffer will hold; buffer 0 is the empty sentinel."""

    tensors: list[_Tensor] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])
    ops: list[tuple[int, list[int], list[int]]] = field(default_factory=list)
    opcodes: list[tuple[int, int]] = field(default_factory=list)

    def tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: int,
        data: bytes | None = None,
        quant: tuple[float, int] | None = None,
    ) -> int:
        buffer = 0
        if data is not None:
            self.buffers.append(data)
            buffer = len(self.buffers) - 1
        self.tensors.append(_Tensor(name, shape, dtype, buffer, quant))
        return len(self.tensors) - 1

    def op(self, code: tuple[int, int], inputs: list[int], outputs: list[int]) -> None:
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.ops.append((self.opcodes.index(code), inputs, outputs))

    @staticmethod
    def _options(b: flatbuffers.Builder, code: int) -> tuple[int, int] | None:
        """(options type, offset) of an op's builtin options: no fused activation."""
        none = tflite.ActivationFunctionType.NONE
        if code == _OP.FULLY_CONNECTED:
            tflite.FullyConnectedOptionsStart(b)
            tflite.FullyConnectedOptionsAddFusedActivationFunction(b, none)
            return tflite.BuiltinOptions.FullyConnectedOptions, tflite.FullyConnectedOptionsEnd(b)
        if code == _OP.SUB:
            tflite.SubOptionsStart(b)
            tflite.SubOptionsAddFusedActivationFunction(b, none)
            return tflite.BuiltinOptions.SubOptions, tflite.SubOptionsEnd(b)
        if code == _OP.MUL:
            tflite.MulOptionsStart(b)
            tflite.MulOptionsAddFusedActivationFunction(b, none)
            return tflite.BuiltinOptions.MulOptions, tflite.MulOptionsEnd(b)
        return None

    def serialise(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        b = flatbuffers.Builder(1024 + sum(len(d) for d in self.buffers))

        def int_vector(start: object, values: list[int]) -> int:
            start(b, len(values))  # type: ignore[operator]
            for v in reversed(values):
                b.PrependInt32(v)
            return int(b.EndVector())

        def table_vector(start: object, offsets: list[int]) -> int:
            start(b, len(offsets))  # type: ignore[operator]
            for off in reversed(offsets):
                b.PrependUOffsetTRelative(off)
            return int(b.EndVector())

        buffer_offsets = []
        for data in self.buffers:
            data_off = None
            if data:
                # 16-byte alignment lets runtimes map weights without copying them.
                b.StartVector(1, len(data), 16)
                b.head = b.head - len(data)
                b.Bytes[b.head : b.head + len(data)] = data
                data_off = b.EndVector()
            tflite.BufferStart(b)
            if data_off is not None:
                tflite.BufferAddData(b, data_off)
            buffer_offsets.append(tflite.BufferEnd(b))

        tensor_offsets = []
        for t in self.tensors:
            name = b.CreateString(t.name)
            shape = int_vector(tflite.TensorStartShapeVector, list(t.shape))
            quant = None
            if t.quant is not None:
                tflite.QuantizationParametersStartScaleVector(b, 1)
                b.PrependFloat32(t.quant[0])
                scale = b.EndVector()
                tflite.QuantizationParametersStartZeroPointVector(b, 1)
                b.PrependInt64(t.quant[1])
                zero = b.EndVector()
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, scale)
                tflite.QuantizationParametersAddZeroPoint(b, zero)
                quant = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shape)
            tflite.TensorAddType(b, t.dtype)
            tflite.TensorAddBuffer(b, t.buffer)
            tflite.TensorAddName(b, name)
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            tensor_offsets.append(tflite.TensorEnd(b))

        op_offsets = []
        for index, op_in, op_out in self.ops:
            in_vec = int_vector(tflite.OperatorStartInputsVector, op_in)
            out_vec = int_vector(tflite.OperatorStartOutputsVector, op_out)
            options = self._options(b, self.opcodes[index][0])
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, index)
            tflite.OperatorAddInputs(b, in_vec)
            tflite.OperatorAddOutputs(b, out_vec)
            if options is not None:
                tflite.OperatorAddBuiltinOptionsType(b, options[0])
                tflite.OperatorAddBuiltinOptions(b, options[1])
            op_offsets.append(tflite.OperatorEnd(b))

        tensors_vec = table_vector(tflite.SubGraphStartTensorsVector, tensor_offsets)
        sg_in = int_vector(tflite.SubGraphStartInputsVector, inputs)
        sg_out = int_vector(tflite.SubGraphStartOutputsVector, outputs)
        ops_vec = table_vector(tflite.SubGraphStartOperatorsVector, op_offsets)
        sg_name = b.CreateString("main")
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tensors_vec)
        tflite.SubGraphAddInputs(b, sg_in)
        tflite.SubGraphAddOutputs(b, sg_out)
        tflite.SubGraphAddOperators(b, ops_vec)
        tflite.SubGraphAddName(b, sg_name)
        subgraph = tflite.SubGraphEnd(b)

        code_offsets = []
        for code, version in self.opcodes:
            tflite.OperatorCodeStart(b)
            # Readers look at the int8 field for codes below 127 and at the int32 one otherwise.
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, version)
            code_offsets.append(tflite.OperatorCodeEnd(b))

        codes_vec = table_vector(tflite.ModelStartOperatorCodesVector, code_offsets)
        subgraphs_vec = table_vector(tflite.ModelStartSubgraphsVector, [subgraph])
        buffers_vec = table_vector(tflite.ModelStartBuffersVector, buffer_offsets)
        desc = b.CreateString(description)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, codes_vec)
        tflite.ModelAddSubgraphs(b, subgraphs_vec)
        tflite.ModelAddBuffers(b, buffers_vec)
        tflite.ModelAddDescription(b, desc)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def float_model(hidden: HiddenLayer) -> bytes:
    """The float32 model ``x[1,d] -> h[1,L]`` of ``hidden``."""
    d, L = hidden.n_features, hidden.n_hidden
    g = _Graph()
    x = g.tensor("x", (1, d), _T.FLOAT32)
    w = g.tensor("W_t", (L, d), _T.FLOAT32, _le(hidden.W.T, "<f4"))
    bias = g.tensor("b", (L,), _T.FLOAT32, _le(hidden.b, "<f4"))
    z = g.tensor("z", (1, L), _T.FLOAT32)
    h = g.tensor("h", (1, L), _T.FLOAT32)
    g.op(_FLOAT_OPS["fc"], [x, w, bias], [z])
    g.op(_FLOAT_OPS[hidden.activation], [z], [h])
    return g.serialise([x], [h], f"smfel hidden layer float32 {hidden.content_hash}")


@dataclass(frozen=True, slots=True, eq=False)
class Calibration:
    """What the integer models need from calibration data.

    ``center`` and ``inv_scale`` (d,) standardise the features; ``x`` and ``z`` are the int8
    (scale, zero point) pairs of the standardised input and the pre-activation, ``x_bound``
    and ``z_bound`` the symmetric ranges of their int16 counterparts.
    """

    center: F64
    inv_scale: F64
    x: tuple[float, int]
    w_scale: float
    z: tuple[float, int]
    x_bound: float
    z_bound: float
    n_samples: int

    def as_dict(self) -> dict[str, object]:
        return {
            "x_scale": self.x[0],
            "x_zero_point": self.x[1],
            "w_scale": self.w_scale,
            "z_scale": self.z[0],
            "z_zero_point": self.z[1],
            "x_bound": self.x_bound,
            "z_bound": self.z_bound,
            "n_samples": self.n_samples,
        }


def _asymmetric(lo: float, hi: float) -> tuple[float, int]:
    """int8 (scale, zero point) for the range [lo, hi], widened to hold 0 exactly."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    scale = (hi - lo) / 255.0
    zero = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return float(np.float32(scale)), zero


def _normalised(hidden: HiddenLayer, center: F64, inv_scale: F64) -> tuple[F64, F64]:
    """``W', b'`` with ``x W + b == ((x - center) * inv_scale) W' + b'``."""
    return hidden.W / inv_scale[:, None], hidden.b + center @ hidden.W


def calibrate(hidden: HiddenLayer, calibration: ArrayLike) -> Calibration:
    """Quantisation parameters from ``calibration`` feature vectors (n, d): real beats.

    Raw beat features live on very different scales (RR intervals in seconds, amplitudes in
    mV), and an int8 tensor has one scale, so the features are first standardised by float SUB
    and MUL ops (mean and standard deviation of the calibration data; the map is folded out of
    ``W, b`` again). The input range then covers ``_INPUT_QUANTILE`` of the standardised values
    and the pre-activation range ``_Z_QUANTILES`` of the calibration pre-activations, clipped
    to the activation's useful range: rare extreme values are clipped so that the common ones
    get finer steps. Measured on MIT-BIH DS1 beats this beats min/max ranges and per-feature
    min/max scaling (which puts the weight scale at the mercy of outlier-heavy features).
    """
    X = np.asarray(calibration, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != hidden.n_features or X.shape[0] < 1:
        raise ModelWriteError(
            f"calibration must be an (n, {hidden.n_features}) array with n >= 1, got {X.shape}"
        )
    if not np.isfinite(X).all():
        raise ModelWriteError("calibration data must be finite")
    center = X.mean(axis=0).astype(np.float32).astype(np.float64)
    sd = X.std(axis=0)
    inv_scale = (1.0 / np.where(sd > 0, sd, 1.0)).astype(np.float32).astype(np.float64)
    W, b = _normalised(hidden, center, inv_scale)
    Xn = (X - center) * inv_scale
    T = max(float(np.quantile(np.abs(Xn), _INPUT_QUANTILE)), 1e-6)
    Z = Xn @ W + b
    bound = _SATURATION[hidden.activation]
    z_lo, z_hi = np.clip(np.quantile(Z, _Z_QUANTILES), -bound, bound)
    w_scale = float(np.float32(max(float(np.abs(W).max()), 1e-12) / 127.0))
    return Calibration(
        center=center,
        inv_scale=inv_scale,
        x=_asymmetric(-T, T),
        w_scale=w_scale,
        z=_asymmetric(float(z_lo), float(z_hi)),
        x_bound=max(float(np.abs(Xn).max()) * _HEADROOM_16, 1e-6),
        z_bound=min(max(float(np.abs(Z).max()) * _HEADROOM_16, 1e-6), _SATURATION_16),
        n_samples=int(X.shape[0]),
    )


def int8_model(hidden: HiddenLayer, calibration: ArrayLike | Calibration) -> bytes:
    """The int8 model (int8 activations and weights) with float32 input and output.

    ``calibration`` is either feature vectors (n, d) or a :class:`Calibration` from
    :func:`calibrate`. Graph: ``x -SUB,MUL-> x_n -QUANTIZE-> FC(int8) -> LOGISTIC|TANH(int8)
    -DEQUANTIZE-> h``; everything from QUANTIZE to DEQUANTIZE is integer-only.
    """
    return _quantised_model(hidden, calibration, "int8")


def int16x8_model(hidden: HiddenLayer, calibration: ArrayLike | Calibration) -> bytes:
    """The same graph with int16 activations and int8 weights (TFLite's "16x8" scheme).

    Still integer-only, with 128 times finer activation steps than int8: the choice when int8
    output steps change too many class decisions and the NPU (or the CPU) runs 16x8 kernels.
    """
    return _quantised_model(hidden, calibration, "int16x8")


def _quantised_model(
    hidden: HiddenLayer, calibration: ArrayLike | Calibration, kind: QuantKind
) -> bytes:
    cal = calibration if isinstance(calibration, Calibration) else calibrate(hidden, calibration)
    d, L = hidden.n_features, hidden.n_hidden
    W, b = _normalised(hidden, cal.center, cal.inv_scale)
    if kind == "int8":
        act, x_q, z_q, bias_t, bias_dt, bias_max = _T.INT8, cal.x, cal.z, _T.INT32, "<i4", 2**31
    else:
        x_q, z_q = (cal.x_bound / 32767.0, 0), (cal.z_bound / 32767.0, 0)
        act, bias_t, bias_dt, bias_max = _T.INT16, _T.INT64, "<i8", 2**63
    s_x, s_w = float(np.float32(x_q[0])), cal.w_scale
    x_q = (s_x, x_q[1])
    s_b = float(np.float32(s_x) * np.float32(s_w))
    w_q = np.clip(np.round(W.T / s_w), -127, 127).astype("<i1")
    b_q = np.round(b / s_b)
    if np.abs(b_q).max(initial=0.0) >= bias_max / 2:
        raise ModelWriteError(f"bias does not fit {bias_dt} at the calibrated scales")
    ops = _QUANT_OPS[kind]
    g = _Graph()
    x = g.tensor("x", (1, d), _T.FLOAT32)
    center = g.tensor("x_center", (d,), _T.FLOAT32, _le(cal.center, "<f4"))
    inv_scale = g.tensor("x_inv_scale", (d,), _T.FLOAT32, _le(cal.inv_scale, "<f4"))
    xc = g.tensor("x_c", (1, d), _T.FLOAT32)
    xn = g.tensor("x_n", (1, d), _T.FLOAT32)
    xq = g.tensor("x_q", (1, d), act, quant=x_q)
    w = g.tensor("W_t_q", (L, d), _T.INT8, w_q.tobytes(), quant=(s_w, 0))
    bias = g.tensor("b_q", (L,), bias_t, b_q.astype(bias_dt).tobytes(), quant=(s_b, 0))
    zq = g.tensor("z_q", (1, L), act, quant=z_q)
    hq = g.tensor("h_q", (1, L), act, quant=_OUTPUT[kind][hidden.activation])
    h = g.tensor("h", (1, L), _T.FLOAT32)
    g.op(_SUB, [x, center], [xc])
    g.op(_MUL, [xc, inv_scale], [xn])
    g.op(ops["quantize"], [xn], [xq])
    g.op(ops["fc"], [xq, w, bias], [zq])
    g.op(ops[hidden.activation], [zq], [hq])
    g.op(ops["dequantize"], [hq], [h])
    return g.serialise([x], [h], f"smfel hidden layer {kind} {hidden.content_hash}")


def _le(a: F64, dtype: str) -> bytes:
    return np.ascontiguousarray(a, dtype=dtype).tobytes()
