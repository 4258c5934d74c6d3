"""Which BLAS the learner uses, checked in fresh interpreters (so not in the emulated tier,
which cannot start native children).

The agent must not load scipy: its OpenBLAS would be a second copy beside numpy's (about
10 MB of resident memory). The scipy wrappers remain the fallback where numpy's OpenBLAS is not
found; ``SMFEL_BLAS=scipy`` forces them, which is how the fallback is tested here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.support.child import run_python

_ROOT = Path(__file__).resolve().parents[2]

_REPORT = """
import json, sys
{prelude}
import numpy as np
from smfel.agent import OSELM, HiddenLayer, _lapack
rng = np.random.default_rng(5)
learner = OSELM(HiddenLayer.generate(8, 40, seed=2), C=3.0, class_weight=[0.4, 4.0, 2.0, 8.0])
X, y = rng.normal(size=(120, 8)), rng.integers(0, 4, size=120)
learner.learn_many(X[:60], y[:60])
for i in range(60, 120):
    learner.learn_one(X[i], int(y[i]))
learner.resolve()
maps = [l.split()[-1] for l in open("/proc/self/maps") if "openblas" in l.lower()]
print(json.dumps({{
    "backend": _lapack.BACKEND,
    "library": _lapack.LIBRARY,
    "reason": _lapack.FALLBACK_REASON,
    "scipy": sorted(m for m in sys.modules if m.split(".")[0] == "scipy"),
    "openblas": sorted(set(maps)),
    "beta": learner.beta_.tolist(),
}}))
"""


def _child(env: dict[str, str], prelude: str = "") -> dict[str, object]:
    report: dict[str, object] = json.loads(run_python(_REPORT.format(prelude=prelude), env=env))
    return report


def _numpy_openblas() -> list[Path]:
    pkg = Path(np.__file__).resolve().parent
    return sorted((pkg.parent / "numpy.libs").glob("libscipy_openblas64_*"))


def test_the_agent_service_does_not_import_scipy() -> None:
    code = (
        "import sys, smfel.agent.daemon.service; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    # SMFEL_BLAS empty: the default choice, whatever this run forces.
    assert run_python(code, env={"SMFEL_BLAS": ""}).strip() == "[]"


def test_the_learner_uses_numpy_openblas_and_maps_no_other() -> None:
    report = _child({"SMFEL_BLAS": ""})
    assert report["scipy"] == []
    files = _numpy_openblas()
    if not files:  # a numpy without its bundled OpenBLAS: the fallback must say why
        assert report["backend"] == "scipy" and report["reason"]
        return
    assert report["backend"] == "openblas"
    assert Path(str(report["library"])).resolve() in [f.resolve() for f in files]
    mapped = report["openblas"]
    assert isinstance(mapped, list)
    assert [Path(p).resolve() for p in mapped] == [Path(str(report["library"])).resolve()]


def test_the_scipy_fallback_learns_the_same_model() -> None:
    native = _child({"SMFEL_BLAS": ""})
    fallback = _child({"SMFEL_BLAS": "scipy"})
    assert fallback["backend"] == "scipy" and fallback["reason"] == "SMFEL_BLAS=scipy"
    assert fallback["scipy"] == ["scipy.linalg._fblas", "scipy.linalg._flapack"]
    np.testing.assert_allclose(
        np.array(fallback["beta"]), np.array(native["beta"]), rtol=1e-9, atol=1e-12
    )


def test_without_numpy_openblas_the_scipy_wrappers_take_over(tmp_path: Path) -> None:
    # numpy seen from an empty folder: no bundled library next to it.
    hide = f"import numpy; numpy.__file__ = {str(tmp_path / 'numpy' / '__init__.py')!r}"
    report = _child({"SMFEL_BLAS": ""}, prelude=hide)
    assert report["backend"] == "scipy"
    assert "not found" in str(report["reason"])
    forced = subprocess.run(
        [sys.executable, "-c", hide + "; import smfel.agent._lapack"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SMFEL_BLAS": "openblas"},
    )
    assert forced.returncode != 0
    assert "ImportError" in forced.stderr and "numpy's OpenBLAS" in forced.stderr


def test_the_routine_tests_pass_with_the_scipy_fallback() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/learner/test_blas.py",
            "tests/learner/test_rls.py",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=_ROOT,
        env={**os.environ, "SMFEL_BLAS": "scipy"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
