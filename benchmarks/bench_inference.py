"""Per-beat hidden-layer inference: LiteRT float32, int8 and int16x8 through the runtime,
numpy, and a bare ``invoke()`` of the same models as the baseline, side by side in one run.

The runtime's per-beat path is ``set_tensor`` from a preallocated buffer, ``invoke``,
``get_tensor`` and the float64 conversion, plus the shape and finiteness check of the input;
its ``overhead`` is the ratio to a bare ``invoke()`` (target: at most 2). ``classify`` adds the
numpy output layer ``h @ beta`` that the daemon runs for every beat.
"""

from __future__ import annotations

import tempfile
from functools import partial
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import NDArray

from benchmarks._core import Result, benchmark, time_per_call
from smfel.agent.bundle import ModelBundle, Variant, load_bundle, write_bundle
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.agent.model_defaults import DEFAULT_HIDDEN
from smfel.agent.runtime import Runtime, open_runtime
from smfel.sensors import N_FEATURES

#: The project's beat features with its default hidden size and with L = 256, and the size
#: STACK_NOTES measured.
SIZES = ((N_FEATURES, DEFAULT_HIDDEN), (N_FEATURES, 256), (256, 512))
K = 4
NUMBER = 2000


def _bundle(d: int, L: int, where: str) -> tuple[ModelBundle, np.ndarray]:
    rng = np.random.default_rng(0)
    scale = np.linspace(0.2, 3.0, d)
    X = rng.standard_normal((1000, d)) * scale + np.linspace(-1.0, 2.0, d)
    hidden = HiddenLayer.generate(d, L, seed=1).with_scaling(X.mean(axis=0), X.std(axis=0))
    key = Ed25519PrivateKey.generate()
    write_bundle(where, hidden, signing_key=key, calibration=X[:500])
    return load_bundle(where, {key_id(key): key.public_key()}), X[500:]


def _result(
    name: str, params: dict[str, Any], timing: tuple[float, float, float], **kw: Any
) -> Result:
    med, lo, hi = (t * 1e6 for t in timing)
    return Result(name, params, med, lo, hi, "us/beat", **kw)


def _size(d: int, L: int) -> list[Result]:
    with tempfile.TemporaryDirectory() as where:
        bundle, X = _bundle(d, L, where)
    params = {"d": d, "L": L, "threads": 1}
    beta = np.random.default_rng(1).standard_normal((L, K))
    x = X[0]
    out: list[Result] = []
    variants: tuple[Variant, ...] = ("float32", "int8", "int16x8")
    for variant in variants:
        # The baseline: the same model in a bare LiteRT interpreter, invoke() alone.
        interp = Interpreter(model_content=bundle.model_bytes(variant), num_threads=1)
        interp.allocate_tensors()
        bare = time_per_call(interp.invoke, number=NUMBER)
        out.append(_result(f"invoke_{variant}", params, bare))
        rt = open_runtime(bundle, variant=variant)
        t = time_per_call(partial(rt.hidden_one, x), number=NUMBER)
        extra = {"overhead": t[0] / bare[0], "status": rt.status.as_dict()}
        out.append(
            _result(f"runtime_{variant}", params, t, baseline=f"invoke_{variant}", extra=extra)
        )

        def classify(rt: Runtime = rt) -> NDArray[np.float64]:
            scores: NDArray[np.float64] = rt.hidden_one(x) @ beta
            return scores

        t = time_per_call(classify, number=NUMBER)
        out.append(_result(f"classify_{variant}", params, t, baseline=f"invoke_{variant}"))
    rt = open_runtime(bundle, prefer=("numpy",))
    t = time_per_call(partial(rt.hidden_one, x), number=NUMBER)
    out.append(_result("numpy_float64", params, t, baseline="invoke_float32"))
    W32, b32 = bundle.hidden.W.astype(np.float32), bundle.hidden.b.astype(np.float32)
    x32 = x.astype(np.float32)

    def numpy32() -> NDArray[np.float32]:
        z: NDArray[np.float32] = x32 @ W32
        z += b32
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1.0
        return np.reciprocal(z, out=z)

    t = time_per_call(numpy32, number=NUMBER)
    out.append(_result("numpy_float32", params, t, baseline="invoke_float32"))
    return out


@benchmark("inference")
def bench_inference() -> list[Result]:
    return [r for d, L in SIZES for r in _size(d, L)]
