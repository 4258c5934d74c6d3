"""Per-beat hidden-layer inference: LiteRT float32, int8 and int16x8 through the runtime, numpy,
and a bare ``invoke()`` of the same models as the baseline, side by side in one run.

The runtime's per-beat path (``Runtime.hidden_one``) is the input's shape and finiteness check,
the float32 conversion into the interpreter's input buffer, ``invoke`` and the float64 copy of
``h``; its ``overhead`` is the ratio to a bare ``Interpreter.invoke()`` of the same model (target:
at most 2). ``classify`` adds the numpy output layer ``h @ beta`` that the daemon runs for every
beat. ``block`` is the per-beat time of ``Runtime.hidden_many`` on ``BLOCK`` beats (input check
and conversion once per block, one invoke per beat). ``invoke_int8_k1`` is the int8 model
without replicas (one copy of each unit), for the cost of the bundles' default two.

Each runtime entry and its baseline are timed in alternating rounds of ``NUMBER`` calls, so a
busy machine slows both alike; ``overhead`` is the median of the per-round ratios.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import NDArray

from benchmarks._core import Result, benchmark
from smfel.agent.bundle import ModelBundle, Variant, load_bundle, write_bundle
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.agent.model_defaults import DEFAULT_HIDDEN
from smfel.agent.runtime import Runtime, open_runtime
from smfel.agent.tflite_writer import calibrate, int8_model
from smfel.sensors import N_FEATURES

#: The project's beat features with its default hidden size and with L = 256, and the size
#: STACK_NOTES measured.
SIZES = ((N_FEATURES, DEFAULT_HIDDEN), (N_FEATURES, 256), (256, 512))
K = 4
NUMBER = 200
ROUNDS = 41
BLOCK = 32


def _bundle(d: int, L: int, where: str) -> tuple[ModelBundle, NDArray[np.float64]]:
    rng = np.random.default_rng(0)
    scale = np.linspace(0.2, 3.0, d)
    X = rng.standard_normal((1000, d)) * scale + np.linspace(-1.0, 2.0, d)
    hidden = HiddenLayer.generate(d, L, seed=1).with_scaling(X.mean(axis=0), X.std(axis=0))
    key = Ed25519PrivateKey.generate()
    write_bundle(where, hidden, signing_key=key, calibration=X[:500])
    return load_bundle(where, {key_id(key): key.public_key()}), X[500:]


def _bare(model: bytes) -> Callable[[], object]:
    interp = Interpreter(model_content=model, num_threads=1)
    interp.allocate_tensors()
    detail = interp.get_input_details()[0]
    interp.set_tensor(detail["index"], np.zeros(detail["shape"], np.float32))
    invoke: Callable[[], object] = interp.invoke
    return invoke


def _rounds(fns: dict[str, Callable[[], object]]) -> dict[str, list[float]]:
    """Seconds per call of every function, ``ROUNDS`` samples each, the functions alternating."""
    for fn in fns.values():
        fn()  # warm up
    out: dict[str, list[float]] = {name: [] for name in fns}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(ROUNDS):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                for _ in range(NUMBER):
                    fn()
                out[name].append((time.perf_counter() - t0) / NUMBER)
    finally:
        if gc_was:
            gc.enable()
    return out


def _result(name: str, params: dict[str, Any], samples: list[float], **kw: Any) -> Result:
    us = [t * 1e6 for t in samples]
    return Result(name, params, statistics.median(us), min(us), max(us), "us/beat", **kw)


def _size(d: int, L: int) -> list[Result]:
    with tempfile.TemporaryDirectory() as where:
        bundle, X = _bundle(d, L, where)
    params = {"d": d, "L": L, "threads": 1}
    beta = np.random.default_rng(1).standard_normal((L, K))
    x = X[0]
    fns: dict[str, Callable[[], object]] = {}
    runtimes: dict[str, Runtime] = {}
    variants: tuple[Variant, ...] = ("float32", "int8", "int16x8")
    for variant in variants:
        # The baseline: the same model in a bare LiteRT interpreter, invoke() alone.
        fns[f"invoke_{variant}"] = _bare(bundle.model_bytes(variant))
        rt = open_runtime(bundle, variant=variant)
        runtimes[variant] = rt
        fns[f"runtime_{variant}"] = partial(rt.hidden_one, x)

        def classify(hidden_one: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> object:
            return hidden_one(x) @ beta

        fns[f"classify_{variant}"] = partial(classify, rt.hidden_one)
        fns[f"block_{variant}"] = partial(rt.hidden_many, X[:BLOCK])
    one_copy = int8_model(bundle.hidden, calibrate(bundle.hidden, X[:500], replicas=1))
    fns["invoke_int8_k1"] = _bare(one_copy)
    numpy_rt = open_runtime(bundle, prefer=("numpy",))
    fns["numpy_float64"] = partial(numpy_rt.hidden_one, x)
    W32, b32 = bundle.hidden.W.astype(np.float32), bundle.hidden.b.astype(np.float32)
    x32 = x.astype(np.float32)

    def numpy32() -> NDArray[np.float32]:
        z: NDArray[np.float32] = x32 @ W32
        z += b32
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1.0
        return np.reciprocal(z, out=z)

    fns["numpy_float32"] = numpy32
    samples = _rounds(fns)
    for variant in variants:
        samples[f"block_{variant}"] = [t / BLOCK for t in samples[f"block_{variant}"]]
    out: list[Result] = []
    for name, ts in samples.items():
        kind, _, suffix = name.partition("_")
        kw: dict[str, Any] = {}
        if kind in ("runtime", "classify", "block"):
            base = samples[f"invoke_{suffix}"]
            ratios = [t / b for t, b in zip(ts, base, strict=True)]
            kw["baseline"] = f"invoke_{suffix}"
            kw["extra"] = {"overhead": statistics.median(ratios)}
            if kind == "runtime":
                kw["extra"]["status"] = runtimes[suffix].status.as_dict()
        elif kind == "numpy" or name == "invoke_int8_k1":
            kw["baseline"] = "invoke_float32" if kind == "numpy" else "invoke_int8"
        out.append(_result(name, params, ts, **kw))
    return out


@benchmark("inference")
def bench_inference() -> list[Result]:
    return [r for d, L in SIZES for r in _size(d, L)]
