"""The runtime through the real LiteRT interpreter: accuracy, fallbacks, status."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert import interpreter as litert

from smfel.agent.bundle import ModelBundle, Variant, load_bundle, write_bundle
from smfel.agent.errors import SmfelError
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey
from smfel.agent.runtime import (
    DelegateSpec,
    Runtime,
    RuntimeInputError,
    RuntimeStatus,
    open_runtime,
)
from tests.inference.conftest import raw_features

pytestmark = pytest.mark.device


@pytest.fixture(scope="module")
def bundle(
    tmp_path_factory: pytest.TempPathFactory,
    scaled_layer: HiddenLayer,
    issuer: Ed25519PrivateKey,
    trusted: dict[str, Ed25519PublicKey],
) -> ModelBundle:
    where = tmp_path_factory.mktemp("bundle")
    write_bundle(where, scaled_layer, signing_key=issuer, calibration=raw_features(400, 24, 11))
    return load_bundle(where, trusted)


def test_float32_matches_reference(bundle: ModelBundle) -> None:
    rt = open_runtime(bundle, variant="float32")
    assert rt.status.backend == "litert"
    assert (rt.status.variant, rt.status.delegate, rt.status.fallback_reason) == (
        "float32",
        None,
        None,
    )
    assert 0.0 <= rt.status.selftest_max_error <= 1e-4
    assert rt.status.selftest_latency_us > 0.0
    X = raw_features(200, 24, seed=12)
    ref = bundle.hidden.transform(X)
    H = rt.hidden_many(X)
    assert H.dtype == np.float64
    assert H.shape == (200, 64)
    assert np.abs(H - ref).max() <= 1e-5
    h = rt.hidden_one(X[5])
    assert h.shape == (64,)
    assert h.dtype == np.float64
    assert np.array_equal(h, H[5])
    h[:] = -1.0  # the caller owns what it gets back
    assert np.array_equal(rt.hidden_one(X[5]), H[5])


def test_int8_is_close(bundle: ModelBundle) -> None:
    rt = open_runtime(bundle, variant="int8")
    assert (rt.status.backend, rt.status.variant, rt.status.fallback_reason) == (
        "litert",
        "int8",
        None,
    )
    assert 0.0 < rt.status.selftest_max_error <= 0.1
    X = raw_features(200, 24, seed=12)
    err = np.abs(rt.hidden_many(X) - bundle.hidden.transform(X))
    assert err.mean() <= 2 / 256
    assert np.array_equal(rt.hidden_one(X[0]), rt.hidden_many(X[:1])[0])


def test_int16x8_is_closer_than_int8(bundle: ModelBundle) -> None:
    rt = open_runtime(bundle, variant="int16x8")
    assert (rt.status.backend, rt.status.variant, rt.status.fallback_reason) == (
        "litert",
        "int16x8",
        None,
    )
    assert 0.0 < rt.status.selftest_max_error <= 0.02
    X = raw_features(200, 24, seed=12)
    ref = bundle.hidden.transform(X)
    err16 = np.abs(rt.hidden_many(X) - ref).mean()
    err8 = np.abs(open_runtime(bundle, variant="int8").hidden_many(X) - ref).mean()
    # int8 with its two replicas (finer effective steps) against int16 activations.
    assert err16 <= err8 / 2


class _PublicOnly:
    """A real interpreter seen only through its public methods (no native object)."""

    def __init__(self, model: bytes) -> None:
        self._it = litert.Interpreter(model_content=model, num_threads=1)
        self._it.allocate_tensors()
        self.get_input_details = self._it.get_input_details
        self.get_output_details = self._it.get_output_details
        self.set_tensor = self._it.set_tensor
        self.get_tensor = self._it.get_tensor
        self.invoke = self._it.invoke


@pytest.mark.parametrize("variant", ["float32", "int8", "int16x8"])
def test_zero_copy_path_equals_the_public_api(bundle: ModelBundle, variant: Variant) -> None:
    model = bundle.model_bytes(variant)
    digest = hashlib.sha256(model).hexdigest()
    rt = open_runtime(bundle, variant=variant)
    assert rt.zero_copy
    public = Runtime(bundle.hidden, _PublicOnly(model))
    assert not public.zero_copy
    X = raw_features(50, 24, seed=21)
    H = rt.hidden_many(X)
    assert np.array_equal(H, public.hidden_many(X))
    for k in (0, 17, 49):
        h = rt.hidden_one(X[k])
        assert np.array_equal(h, H[k])
        assert np.array_equal(h, public.hidden_one(X[k]))
    # Views of the input and output buffers only: the verified model bytes stay as they were.
    assert hashlib.sha256(bundle.model_bytes(variant)).hexdigest() == digest
    assert rt.hidden_many(np.zeros((0, 24))).shape == (0, 64)
    rt.close()
    with pytest.raises(SmfelError, match="closed"):
        rt.hidden_one(X[0])


def test_bare_layer_builds_a_float_model(scaled_layer: HiddenLayer) -> None:
    rt = open_runtime(scaled_layer)
    assert rt.status.backend == "litert"
    x = raw_features(1, 24, seed=1)[0]
    assert np.abs(rt.hidden_one(x) - scaled_layer.transform_one(x)).max() <= 1e-5
    with pytest.raises(ValueError, match="int8 model needs calibration"):
        open_runtime(scaled_layer, variant="int8")


def _not_a_library(tmp_path: Path) -> str:
    path = tmp_path / "libnot_a_delegate.so"
    path.write_text("this is not an ELF shared object\n")
    return str(path)


def _library_without_delegate() -> str:
    # A real shared object that is certainly present and is not a delegate: numpy's core
    # extension (found without ctypes.util, which runs ldconfig in a subprocess).
    return str(next(Path(np.__file__).parent.rglob("_multiarray_umath*.so")))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing", "does not exist"),
        ("not_a_library", "cannot load delegate library"),
        ("no_delegate_symbol", "is not a TFLite delegate"),
    ],
)
@pytest.mark.parametrize("variant", ["float32", "int8", "int16x8"])
def test_broken_delegate_falls_back_to_cpu(
    bundle: ModelBundle,
    tmp_path: Path,
    kind: str,
    expected: str,
    variant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    library = {
        "missing": str(tmp_path / "no" / "libvx_delegate.so"),
        "not_a_library": _not_a_library(tmp_path),
        "no_delegate_symbol": _library_without_delegate(),
    }[kind]
    spec = DelegateSpec(library, {"device": "0"})
    with caplog.at_level(logging.WARNING, logger="smfel.agent.runtime"):
        rt = open_runtime(bundle, variant=variant, delegate=spec)  # type: ignore[arg-type]
    st = rt.status
    assert (st.backend, st.variant, st.delegate) == ("litert", variant, None)
    assert st.fallback_reason is not None
    assert library in st.fallback_reason
    assert expected in st.fallback_reason
    assert expected in caplog.text
    # Still a working CPU runtime.
    x = raw_features(1, 24, seed=2)[0]
    tol = {"float32": 1e-5, "int8": 0.1, "int16x8": 0.02}[variant]
    assert np.abs(rt.hidden_one(x) - bundle.hidden.transform_one(x)).max() <= tol
    # And the agent can publish the status as it is.
    doc = json.loads(json.dumps(st.as_dict()))
    assert doc["fallback_reason"] == st.fallback_reason
    assert doc["delegate"] is None


def test_status_is_json_ready(bundle: ModelBundle) -> None:
    st = open_runtime(bundle, num_threads=2).status
    doc = st.as_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert set(doc) == {
        "backend",
        "variant",
        "delegate",
        "fallback_reason",
        "selftest_max_error",
        "selftest_latency_us",
        "num_threads",
    }
    assert doc["num_threads"] == 2
    assert isinstance(st, RuntimeStatus)
    with pytest.raises(AttributeError):
        st.backend = "numpy"  # type: ignore[misc]


def test_numpy_backend_is_the_reference(bundle: ModelBundle) -> None:
    rt = open_runtime(bundle, prefer=("numpy",))
    assert (rt.status.backend, rt.status.variant, rt.status.fallback_reason) == (
        "numpy",
        "float64",
        None,
    )
    X = raw_features(20, 24, seed=3)
    assert np.array_equal(rt.hidden_many(X), bundle.hidden.transform(X))
    assert np.array_equal(rt.hidden_one(X[0]), bundle.hidden.transform_one(X[0]))


def test_tflite_runtime_then_numpy(bundle: ModelBundle) -> None:
    rt = open_runtime(bundle, prefer=("tflite_runtime", "numpy"))
    if importlib.util.find_spec("tflite_runtime") is None:
        assert rt.status.backend == "numpy"
        assert rt.status.fallback_reason is not None
        assert rt.status.fallback_reason.startswith("tflite_runtime: not installed")
        with pytest.raises(SmfelError, match="no inference backend works: tflite_runtime"):
            open_runtime(bundle, prefer=("tflite_runtime",))
    else:
        assert rt.status.backend == "tflite_runtime"
        assert rt.status.selftest_max_error <= 1e-4


def test_unknown_backend(bundle: ModelBundle) -> None:
    with pytest.raises(ValueError, match="unknown backend 'onnx'"):
        open_runtime(bundle, prefer=("onnx",))


def test_bad_arguments_and_inputs(bundle: ModelBundle) -> None:
    with pytest.raises(ValueError, match="variant must be one of"):
        open_runtime(bundle, variant="int4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_threads"):
        open_runtime(bundle, num_threads=0)
    with pytest.raises(ValueError, match="non-empty path"):
        DelegateSpec("")
    rt = open_runtime(bundle)
    with pytest.raises(RuntimeInputError, match=r"shape \(24,\)"):
        rt.hidden_one(np.zeros(23))
    x = np.zeros(24)
    x[3] = np.nan
    with pytest.raises(RuntimeInputError, match="finite"):
        rt.hidden_one(x)
    with pytest.raises(RuntimeInputError, match="finite"):
        rt.hidden_many(np.full((2, 24), np.inf))
    with pytest.raises(RuntimeInputError, match=r"\(n, 24\)"):
        rt.hidden_many(np.zeros(24))
    # One bad beat does not break the runtime.
    assert rt.hidden_one(np.zeros(24)).shape == (64,)


@pytest.mark.parametrize("prefer", [("litert",), ("numpy",)])
def test_closed_runtime_refuses_work(bundle: ModelBundle, prefer: tuple[str, ...]) -> None:
    with open_runtime(bundle, prefer=prefer) as rt:
        assert rt.hidden_one(np.zeros(24)).shape == (64,)
    with pytest.raises(SmfelError, match="closed"):
        rt.hidden_one(np.zeros(24))
    with pytest.raises(SmfelError, match="closed"):
        rt.hidden_many(np.zeros((2, 24)))
