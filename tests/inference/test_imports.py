"""A device that only loads, verifies and runs bundles never imports the model writer, nor the
parts of numpy a device does not need (``numpy.random`` alone is about 7 MB resident)."""

from __future__ import annotations

from pathlib import Path

from smfel.agent.bundle import write_bundle
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, public_key_raw
from tests.inference.conftest import raw_features
from tests.support.child import run_python

WRITER_MODULES = ("tflite", "smfel.agent.tflite_writer", "smfel.agent.quantise")
UNNEEDED_NUMPY = ("numpy.random", "numpy.ma")

_CHILD = """
import sys
import numpy as np
import smfel.agent.daemon.service
from smfel.agent.bundle import load_bundle
from smfel.agent.keys import key_id, public_key_from_raw
from smfel.agent.runtime import open_runtime

key = public_key_from_raw(bytes.fromhex(sys.argv[2]))
bundle = load_bundle(sys.argv[1], {key_id(key): key})
for variant in ("float32", "int8", "int16x8"):
    with open_runtime(bundle, variant=variant) as rt:
        assert rt.status.backend == "litert", rt.status
        assert rt.hidden_one(np.zeros(24)).shape == (64,)
print(" ".join(m for m in sys.argv[3:] if m in sys.modules) or "none")
"""


def test_loading_and_running_a_bundle_does_not_import_the_writer(tmp_path: Path) -> None:
    X = raw_features(300, 24, seed=5)
    layer = HiddenLayer.generate(24, 64, seed=3).with_scaling(X.mean(axis=0), X.std(axis=0))
    key = Ed25519PrivateKey.generate()
    write_bundle(tmp_path, layer, signing_key=key, calibration=X)
    out = run_python(
        _CHILD,
        str(tmp_path),
        public_key_raw(key.public_key()).hex(),
        *WRITER_MODULES,
        *UNNEEDED_NUMPY,
    )
    assert out.split() == ["none"]
