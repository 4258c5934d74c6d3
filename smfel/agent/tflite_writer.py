"""A small ``.tflite`` writer for the ELM hidden layer, without TensorFlow.

The model computes only ``h = g(x W + b)``; the class scores ``h @ beta`` stay in numpy, so a new
``beta`` never changes the model (and never recompiles an NPU graph). Three variants:

* float32: ``x[1,d] -FULLY_CONNECTED(W^T, b)-> z[1,L] -LOGISTIC|TANH-> h[1,L]``;
* int8 with float input and output, the form NPU delegates take:
  ``x -SUB,MUL-> x_n -QUANTIZE-> FULLY_CONNECTED(int8) -> LOGISTIC|TANH(int8) -DEQUANTIZE-> h``;
  the two float elementwise ops map each feature's calibrated range onto [-1, 1], everything
  from QUANTIZE to DEQUANTIZE is integer-only. With ``replicas`` K > 1 the integer part computes
  K offset copies of every unit (``[1, K L]``) and a float RESHAPE and MEAN average them after
  DEQUANTIZE (:mod:`smfel.agent.quantise` explains why and chooses every parameter);
* int16x8: the same graph with int16 activations and int8 weights (one copy of each unit).

Weights are int8 with one scale per hidden unit (per-axis quantisation, axis 0 of the
``[out, in]`` weight tensor), int32 (int64 for 16x8) biases at ``s_x * s_w[j]``. The file layout
is the TFLite flatbuffer schema (``tflite`` package, generated from ``schema.fbs``); the model is
serialised bottom-up with ``flatbuffers.Builder``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import flatbuffers
import numpy as np
import tflite
from numpy.typing import ArrayLike, NDArray

from smfel.agent.hidden import HiddenLayer
from smfel.agent.quantise import (
    OUTPUT_QUANT,
    Calibration,
    ModelWriteError,
    calibrate,
    int8_layer,
    normalised_layer,
)

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
_CONCATENATION, _RESHAPE, _MEAN = (_OP.CONCATENATION, 1), (_OP.RESHAPE, 1), (_OP.MEAN, 1)

QuantKind = Literal["int8", "int16x8"]


@dataclass(frozen=True, slots=True)
class _Quant:
    """One tensor's quantisation: one (scale, zero point), or one scale per slice of ``axis``."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0

    @classmethod
    def of(cls, scale: float, zero_point: int) -> _Quant:
        return cls((scale,), (zero_point,))

    @classmethod
    def symmetric(cls, scales: F64) -> _Quant:
        """Zero point 0 with one scale per slice of axis 0, or one scale if they are all equal."""
        if np.all(scales == scales[0]):
            return cls.of(float(scales[0]), 0)
        return cls(tuple(float(v) for v in scales), (0,) * len(scales))


@dataclass(slots=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: int
    buffer: int = 0
    quant: _Quant | None = None


@dataclass(slots=True)
class _Graph:
    """Plain lists of what the flatbuffer will hold; buffer 0 is the empty sentinel."""

    tensors: list[_Tensor] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])
    ops: list[tuple[int, list[int], list[int], tuple[int, ...]]] = field(default_factory=list)
    opcodes: list[tuple[int, int]] = field(default_factory=list)

    def tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: int,
        data: bytes | None = None,
        quant: _Quant | None = None,
    ) -> int:
        buffer = 0
        if data is not None:
            self.buffers.append(data)
            buffer = len(self.buffers) - 1
        self.tensors.append(_Tensor(name, shape, dtype, buffer, quant))
        return len(self.tensors) - 1

    def op(
        self,
        code: tuple[int, int],
        inputs: list[int],
        outputs: list[int],
        options: tuple[int, ...] = (),
    ) -> None:
        """Add an op; ``options`` is RESHAPE's new shape (other ops take none)."""
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.ops.append((self.opcodes.index(code), inputs, outputs, options))

    @staticmethod
    def _options(
        b: flatbuffers.Builder, code: int, values: tuple[int, ...]
    ) -> tuple[int, int] | None:
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
        if code == _OP.CONCATENATION:
            tflite.ConcatenationOptionsStart(b)
            tflite.ConcatenationOptionsAddAxis(b, 1)
            tflite.ConcatenationOptionsAddFusedActivationFunction(b, none)
            return tflite.BuiltinOptions.ConcatenationOptions, tflite.ConcatenationOptionsEnd(b)
        if code == _OP.RESHAPE:
            tflite.ReshapeOptionsStartNewShapeVector(b, len(values))
            for v in reversed(values):
                b.PrependInt32(v)
            new_shape = b.EndVector()
            tflite.ReshapeOptionsStart(b)
            tflite.ReshapeOptionsAddNewShape(b, new_shape)
            return tflite.BuiltinOptions.ReshapeOptions, tflite.ReshapeOptionsEnd(b)
        if code == _OP.MEAN:
            tflite.ReducerOptionsStart(b)
            tflite.ReducerOptionsAddKeepDims(b, False)
            return tflite.BuiltinOptions.ReducerOptions, tflite.ReducerOptionsEnd(b)
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
                q = t.quant
                tflite.QuantizationParametersStartScaleVector(b, len(q.scales))
                for s in reversed(q.scales):
                    b.PrependFloat32(s)
                scale = b.EndVector()
                tflite.QuantizationParametersStartZeroPointVector(b, len(q.zero_points))
                for zp in reversed(q.zero_points):
                    b.PrependInt64(zp)
                zero = b.EndVector()
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, scale)
                tflite.QuantizationParametersAddZeroPoint(b, zero)
                tflite.QuantizationParametersAddQuantizedDimension(b, q.axis)
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
        for index, op_in, op_out, values in self.ops:
            in_vec = int_vector(tflite.OperatorStartInputsVector, op_in)
            out_vec = int_vector(tflite.OperatorStartOutputsVector, op_out)
            options = self._options(b, self.opcodes[index][0], values)
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
    if kind == "int8":
        K = cal.replicas
        layer = int8_layer(hidden, cal)
        center, inv_scale, w_q, b_q = layer.center, layer.inv_scale, layer.w_q, layer.b_q
        w_scales, b_scales = layer.w_scales, layer.b_scales
        x_q, z_q, act, bias_t, bias_dt = cal.x, cal.z, _T.INT8, _T.INT32, "<i4"
    else:
        # One copy of each feature and unit: int16 steps leave little rounding to average out.
        K = 1
        x_q, z_q = (cal.x_bound / 32767.0, 0), (cal.z_bound / 32767.0, 0)
        act, bias_t, bias_dt = _T.INT16, _T.INT64, "<i8"
        W, b = normalised_layer(hidden, cal.center, cal.inv_scale)
        center, inv_scale, w_scales = cal.center, cal.inv_scale, cal.w_scales
        b_scales = (np.float32(x_q[0]) * w_scales.astype(np.float32)).astype(np.float64)
        w_q = np.clip(np.round(W.T / w_scales[:, None]), -127, 127).astype(np.int8)
        b_q = np.round(b / b_scales)
    if np.abs(b_q).max(initial=0.0) >= np.iinfo(bias_dt).max // 2:
        raise ModelWriteError(f"bias does not fit {bias_dt} at the calibrated scales")
    ops = _QUANT_OPS[kind]
    g = _Graph()
    x = g.tensor("x", (1, d), _T.FLOAT32)
    xk = x
    if K > 1:
        # K copies of the input, each shifted by its own fraction of a step (see quantise).
        xk = g.tensor("x_replicas", (1, K * d), _T.FLOAT32)
        g.op(_CONCATENATION, [x] * K, [xk])
    c = g.tensor("x_center", (K * d,), _T.FLOAT32, _le(center, "<f4"))
    s = g.tensor("x_inv_scale", (K * d,), _T.FLOAT32, _le(inv_scale, "<f4"))
    xc = g.tensor("x_c", (1, K * d), _T.FLOAT32)
    xn = g.tensor("x_n", (1, K * d), _T.FLOAT32)
    xq = g.tensor("x_q", (1, K * d), act, quant=_Quant.of(float(np.float32(x_q[0])), x_q[1]))
    w = g.tensor(
        "W_t_q", (K * L, K * d), _T.INT8, w_q.astype("<i1").tobytes(), _Quant.symmetric(w_scales)
    )
    bias = g.tensor(
        "b_q", (K * L,), bias_t, b_q.astype(bias_dt).tobytes(), _Quant.symmetric(b_scales)
    )
    zq = g.tensor("z_q", (1, K * L), act, quant=_Quant.of(*z_q))
    h_quant = _Quant.of(*OUTPUT_QUANT[kind][hidden.activation])
    hq = g.tensor("h_q", (1, K * L), act, quant=h_quant)
    g.op(_SUB, [xk, c], [xc])
    g.op(_MUL, [xc, s], [xn])
    g.op(ops["quantize"], [xn], [xq])
    g.op(ops["fc"], [xq, w, bias], [zq])
    g.op(ops[hidden.activation], [zq], [hq])
    h = g.tensor("h", (1, L), _T.FLOAT32)
    if K == 1:
        g.op(ops["dequantize"], [hq], [h])
    else:
        # The unit copies are averaged in float, after the integer part.
        hk = g.tensor("h_replicas", (1, K * L), _T.FLOAT32)
        shape = g.tensor("replica_shape", (3,), _T.INT32, _le(np.array([1, K, L]), "<i4"))
        hr = g.tensor("h_by_replica", (1, K, L), _T.FLOAT32)
        axis = g.tensor("replica_axis", (1,), _T.INT32, _le(np.array([1]), "<i4"))
        g.op(ops["dequantize"], [hq], [hk])
        g.op(_RESHAPE, [hk, shape], [hr], options=(1, K, L))
        g.op(_MEAN, [hr, axis], [h])
    return g.serialise([x], [h], f"smfel hidden layer {kind} {hidden.content_hash}")


def _le(a: F64, dtype: str) -> bytes:
    return np.ascontiguousarray(a, dtype=dtype).tobytes()
