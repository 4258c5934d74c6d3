"""The one adapter to the TFLite interpreter: hidden-layer inference on the CPU or an NPU.

Backends, in the default order of preference: LiteRT (``ai_edge_litert``, x86_64 and aarch64),
``tflite_runtime`` (32-bit ARM, where LiteRT has no wheels), and numpy (the float64 reference,
always available). An optional delegate (Edge TPU, NXP VX, Arm Ethos-U, ...) comes from the
board profile as a shared-library path and options.

Every runtime is self-tested when it opens: known inputs go through it and are compared with the
float64 numpy reference, and the latency per beat is measured. A delegate that fails to load or
fails the self-test is dropped and the CPU is used; a backend that fails is skipped. Every such
reason is logged and kept in :class:`RuntimeStatus`, which the daemon reports in its status.

The model outputs ``h`` only; class scores ``h @ beta`` are computed in numpy by the caller, so a
new ``beta`` never touches the interpreter. Per beat, the input is written straight into the
interpreter's input buffer and ``h`` copied out of its output buffer (see :func:`_native_views`);
:meth:`Runtime.hidden_many` also checks and converts a whole block at once. A :class:`Runtime` is
not thread-safe.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.agent.bundle import ModelBundle, Variant
from smfel.agent.errors import SmfelError
from smfel.agent.hidden import HiddenLayer

__all__ = [
    "BACKENDS",
    "DelegateSpec",
    "Runtime",
    "RuntimeInputError",
    "RuntimeStatus",
    "open_runtime",
]

logger = logging.getLogger(__name__)

F64 = NDArray[np.float64]
Backend = Literal["litert", "tflite_runtime", "numpy"]
BACKENDS: Mapping[str, str] = MappingProxyType(
    {"litert": "ai_edge_litert.interpreter", "tflite_runtime": "tflite_runtime.interpreter"}
)
#: Self-test tolerance on ``h`` (max absolute error against the float64 reference). int8 is
#: bounded by its output step (1/256 sigmoid, 1/128 tanh) plus input and weight rounding,
#: int16x8 mostly by the int8 weights; a broken delegate produces errors of the order of the
#: output range.
TOLERANCE: Mapping[str, float] = MappingProxyType({"float32": 1e-4, "int8": 0.1, "int16x8": 0.02})
_SELFTEST_BEATS = 16
_SELFTEST_TIMED_CALLS = 50


class RuntimeInputError(SmfelError, ValueError):
    """A feature vector of the wrong shape or with non-finite values."""


@dataclass(frozen=True, slots=True)
class DelegateSpec:
    """A delegate from the board profile: shared-library path and its string options."""

    library: str
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.library, str) or not self.library:
            raise ValueError("delegate library must be a non-empty path")
        opts = dict(self.options)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in opts.items()):
            raise ValueError("delegate options must map strings to strings")
        object.__setattr__(self, "options", MappingProxyType(opts))


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """What actually runs, and why it is not what was asked for (``fallback_reason``)."""

    backend: str
    variant: str
    delegate: str | None
    fallback_reason: str | None
    selftest_max_error: float
    selftest_latency_us: float
    num_threads: int = 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for telemetry and the status topic."""
        return {
            "backend": self.backend,
            "variant": self.variant,
            "delegate": self.delegate,
            "fallback_reason": self.fallback_reason,
            "selftest_max_error": float(self.selftest_max_error),
            "selftest_latency_us": float(self.selftest_latency_us),
            "num_threads": int(self.num_threads),
        }


def _native_views(
    interpreter: Any, i: int, o: int
) -> tuple[Callable[[], object], NDArray[np.float32], NDArray[np.float32]] | None:
    """``(invoke, x, h)``: the native invoke and views of the input and output buffers.

    Both LiteRT and tflite_runtime wrap a native interpreter (``_interpreter``) whose
    ``tensor()`` gives numpy views of tensor buffers. Writing a beat into the input view
    converts it to float32 in one step, and the only copy out is the float64 result, with no
    ``set_tensor``/``get_tensor`` copies in between. The public ``Interpreter.invoke()`` refuses
    to run while such a view exists, because ``allocate_tensors()`` or a resize could move the
    buffers; a :class:`Runtime` does neither after opening, so the views stay valid and the
    native invoke runs without that check. Only the input and output tensors are touched
    (never a constant, whose buffer can be the model's own bytes). ``None`` when the wrapper
    has no such native object or the model is not ``x[1, d] -> h[1, L]`` in float32.
    """
    native: Any = getattr(interpreter, "_interpreter", None)
    tensor = getattr(native, "tensor", None)
    invoke = getattr(native, "Invoke", None)
    if not (callable(tensor) and callable(invoke)):
        return None
    x, h = tensor(native, i), tensor(native, o)
    if not all(v.dtype == np.float32 and v.ndim == 2 and len(v) == 1 for v in (x, h)):
        return None
    return invoke, x[0], h[0]


class Runtime:
    """Hidden-layer inference through one interpreter (or numpy). Build with :func:`open_runtime`."""

    def __init__(self, hidden: HiddenLayer, interpreter: Any | None) -> None:
        self._hidden = hidden
        self._interp = interpreter
        self._d = hidden.n_features
        self._shape = (hidden.n_features,)
        self._status: RuntimeStatus | None = None
        self._closed = False
        self._views: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None
        self._invoke: Callable[[], object] = _no_invoke
        if interpreter is not None:
            self._in = int(interpreter.get_input_details()[0]["index"])
            self._out = int(interpreter.get_output_details()[0]["index"])
            # The public path's input: set_tensor copies it, so one buffer serves every beat.
            self._buf = np.zeros((1, hidden.n_features), dtype=np.float32)
            native = _native_views(interpreter, self._in, self._out)
            if native is not None:
                self._invoke, x, h = native
                self._views = (x, h)

    @property
    def status(self) -> RuntimeStatus:
        if self._status is None:
            raise SmfelError("runtime has not been self-tested; use open_runtime()")
        return self._status

    @property
    def hidden(self) -> HiddenLayer:
        return self._hidden

    @property
    def zero_copy(self) -> bool:
        """Whether beats go through views of the interpreter's buffers (else set/get_tensor)."""
        return self._views is not None

    def hidden_one(self, x: ArrayLike) -> F64:
        """``h`` (L,) float64 for one feature vector (d,); a new array on every call."""
        xv = np.asarray(x, dtype=np.float64)
        if xv.shape != self._shape:
            raise RuntimeInputError(f"x must have shape {self._shape}, got {xv.shape}")
        # One BLAS dot is the cheapest finiteness test; it also refuses |x| above ~1e150.
        if not math.isfinite(xv.dot(xv)):
            raise RuntimeInputError("x must be finite")
        views = self._views
        if views is None:
            return self._public_one(xv)
        views[0][...] = xv
        self._invoke()
        return views[1].astype(np.float64)

    def _public_one(self, xv: F64) -> F64:
        interp = self._interp
        if interp is None:
            self._open()
            return self._hidden.transform_one(xv)
        self._buf[0] = xv
        interp.set_tensor(self._in, self._buf)
        interp.invoke()
        out: F64 = interp.get_tensor(self._out)[0].astype(np.float64)
        return out

    def hidden_many(self, X: ArrayLike) -> F64:
        """``H`` (n, L) float64 for feature vectors (n, d), one invoke per beat.

        The input is checked and converted once for the whole block, so a block costs less per
        beat than :meth:`hidden_one`.
        """
        Xv = np.asarray(X, dtype=np.float64)
        if Xv.ndim != 2 or Xv.shape[1] != self._d:
            raise RuntimeInputError(f"X must have shape (n, {self._d}), got {Xv.shape}")
        if not np.isfinite(Xv).all():
            raise RuntimeInputError("X must be finite")
        views = self._views
        if views is None and self._interp is None:
            self._open()
            return self._hidden.transform(Xv)
        H = np.empty((Xv.shape[0], self._hidden.n_hidden))
        if views is None:
            for k in range(Xv.shape[0]):
                H[k] = self._public_one(Xv[k])
            return H
        X32 = Xv.astype(np.float32)
        x_in, h_out, invoke = views[0], views[1], self._invoke
        for k in range(X32.shape[0]):
            x_in[...] = X32[k]
            invoke()
            H[k] = h_out
        return H

    def _open(self) -> None:
        # A closed runtime has no interpreter either; it must not quietly turn into numpy.
        if self._closed:
            raise SmfelError("the runtime is closed")

    def close(self) -> None:
        """Release the interpreter; later calls raise :class:`SmfelError`."""
        # The views and the native invoke keep the native interpreter alive: drop them too.
        self._views = None
        self._invoke = _no_invoke
        self._interp = None
        self._closed = True

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_invoke() -> object:
    raise SmfelError("the runtime has no interpreter")


def _uniform(shape: tuple[int, int], stream: int) -> F64:
    """Fixed pseudo-random numbers in (0, 1): the splitmix64 finaliser of a counter.

    ``numpy.random`` would do, but importing it costs a device about 7 MB of resident memory
    for the self-test's few hundred numbers; this needs only integer arithmetic."""
    n = shape[0] * shape[1]
    x = np.arange(n, dtype=np.uint64) + np.uint64(stream * n + 1)
    x *= np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    u: F64 = ((x >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    return u.reshape(shape)


def _selftest_inputs(hidden: HiddenLayer, interpreter: Any | None, variant: str) -> F64:
    """Fixed inputs: standard normal, or for integer models uniform within a quarter of the
    calibrated input range around the calibration mean (read back from the model's
    ``x_center`` and ``x_inv_scale`` constants, which map that range onto [-1, 1]), where the
    integer model is meant to be accurate."""
    d = hidden.n_features
    shape = (_SELFTEST_BEATS, d)
    if interpreter is not None and variant in ("int8", "int16x8"):
        idx = {t["name"]: t["index"] for t in interpreter.get_tensor_details()}
        if "x_center" in idx and "x_inv_scale" in idx:
            # With replicas the constants repeat per input copy; the first copy is enough.
            center: F64 = interpreter.get_tensor(idx["x_center"])[:d].astype(np.float64)
            inv_scale: F64 = interpreter.get_tensor(idx["x_inv_scale"])[:d].astype(np.float64)
            u: F64 = (_uniform(shape, 0) - 0.5) * 0.5
            X: F64 = center + u / inv_scale
            return X
    # Box-Muller: standard normal from two uniform streams.
    radius = np.sqrt(-2.0 * np.log(_uniform(shape, 1)))
    normal: F64 = radius * np.cos(2.0 * math.pi * _uniform(shape, 2))
    return normal


def _selftest(rt: Runtime, variant: str, interpreter: Any | None) -> tuple[float, float]:
    """(max |h - reference|, median latency in microseconds) of ``rt``."""
    X = _selftest_inputs(rt.hidden, interpreter, variant)
    ref = rt.hidden.transform(X)
    got = np.stack([rt.hidden_one(x) for x in X])
    err = float(np.max(np.abs(got - ref))) if np.isfinite(got).all() else math.inf
    samples = []
    for k in range(_SELFTEST_TIMED_CALLS):
        t0 = time.perf_counter()
        rt.hidden_one(X[k % len(X)])
        samples.append(time.perf_counter() - t0)
    # sorted() rather than np.median, which imports numpy.ma (about 1 MB) on first use.
    samples.sort()
    return err, samples[len(samples) // 2] * 1e6


def _import_backend(name: str) -> Any:
    module = BACKENDS.get(name)
    if module is None:
        raise ValueError(f"unknown backend {name!r}; known: {[*BACKENDS, 'numpy']}")
    return importlib.import_module(module)


def _check_delegate_library(library: str) -> None:
    """Refuse what cannot be a delegate before the interpreter package tries it.

    ``load_delegate`` reports these cases too, but its half-built object then raises again
    from ``__del__``; checking here gives one clear reason and no noise.
    """
    if "/" in library and not os.path.isfile(library):
        raise FileNotFoundError(f"delegate library {library} does not exist")
    try:
        lib = ctypes.CDLL(library)
    except OSError as err:
        raise OSError(f"cannot load delegate library: {err}") from err
    if not hasattr(lib, "tflite_plugin_create_delegate"):
        raise OSError(f"{library} is not a TFLite delegate (no tflite_plugin_create_delegate)")


def _interpreter(module: Any, model: bytes, num_threads: int, delegate: DelegateSpec | None) -> Any:
    delegates = []
    if delegate is not None:
        _check_delegate_library(delegate.library)
        delegates.append(module.load_delegate(delegate.library, dict(delegate.options)))
    interp = module.Interpreter(
        model_content=model, num_threads=num_threads, experimental_delegates=delegates or None
    )
    interp.allocate_tensors()
    return interp


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def open_runtime(
    bundle_or_hidden: ModelBundle | HiddenLayer,
    *,
    variant: Variant = "float32",
    delegate: DelegateSpec | None = None,
    num_threads: int = 1,
    prefer: Sequence[str] = ("litert", "tflite_runtime", "numpy"),
) -> Runtime:
    """Open the first backend of ``prefer`` that passes its self-test.

    With a :class:`ModelBundle` the bundle's verified model of ``variant`` runs; with a bare
    :class:`HiddenLayer` a float32 model is built from it (integer variants need a calibrated
    bundle).
    Failures fall back (delegate -> CPU, backend -> next backend) and are recorded in
    ``status.fallback_reason``; :class:`SmfelError` if nothing in ``prefer`` works.
    """
    if variant not in TOLERANCE:
        raise ValueError(f"variant must be one of {sorted(TOLERANCE)}, got {variant!r}")
    if not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    if not prefer:
        raise ValueError("prefer must name at least one backend")
    bundle: ModelBundle | None = None
    if isinstance(bundle_or_hidden, ModelBundle):
        bundle, hidden = bundle_or_hidden, bundle_or_hidden.hidden
    else:
        hidden = bundle_or_hidden
    if bundle is None and variant != "float32":
        raise ValueError(f"an {variant} model needs calibration: open a bundle, not a bare layer")

    def get_model(v: Variant) -> bytes:
        if bundle is not None:
            return bundle.model_bytes(v)
        # Only a bare layer needs the writer (and the flatbuffer schema package it imports).
        from smfel.agent.tflite_writer import float_model

        return float_model(hidden)

    reasons: list[str] = []
    for backend in prefer:
        if backend == "numpy":
            rt = Runtime(hidden, None)
            err, latency = _selftest(rt, "float64", None)
            return _finish(rt, "numpy", "float64", None, reasons, err, latency, num_threads)
        try:
            module = _import_backend(backend)
            model = get_model(variant)
        except ImportError as e:
            reasons.append(f"{backend}: not installed ({_describe(e)})")
            continue
        except SmfelError as e:
            reasons.append(f"{backend}: {_describe(e)}")
            continue
        attempts = [delegate, None] if delegate is not None else [None]
        for dspec in attempts:
            where = f"{backend} with delegate {dspec.library}" if dspec else f"{backend} on CPU"
            try:
                interp = _interpreter(module, model, num_threads, dspec)
                rt = Runtime(hidden, interp)
                err, latency = _selftest(rt, variant, interp)
            except Exception as e:  # vendor delegates raise anything
                reasons.append(f"{where}: {_describe(e)}")
                continue
            if not err <= TOLERANCE[variant]:
                reasons.append(
                    f"{where}: self-test max |error| {err:.3g} above {TOLERANCE[variant]:g}"
                )
                continue
            return _finish(
                rt,
                backend,
                variant,
                dspec.library if dspec else None,
                reasons,
                err,
                latency,
                num_threads,
            )
    raise SmfelError(f"no inference backend works: {'; '.join(reasons)}")


def _finish(
    rt: Runtime,
    backend: str,
    variant: str,
    delegate: str | None,
    reasons: list[str],
    err: float,
    latency: float,
    num_threads: int,
) -> Runtime:
    reason = "; ".join(reasons) if reasons else None
    rt._status = RuntimeStatus(backend, variant, delegate, reason, err, latency, num_threads)
    if reason:
        logger.warning("inference falls back to %s %s: %s", backend, variant, reason)
    logger.info(
        "inference: %s %s delegate=%s self-test max error %.3g, %.1f us per beat",
        backend,
        variant,
        delegate,
        err,
        latency,
    )
    return rt
