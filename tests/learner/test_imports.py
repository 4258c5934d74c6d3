"""The learner's BLAS and LAPACK come from scipy's compiled wrappers alone (checked in a fresh
interpreter, so not in the emulated tier, which cannot start native children)."""

from __future__ import annotations

import subprocess
import sys


def test_the_learner_loads_blas_without_the_scipy_linalg_package() -> None:
    code = (
        "import sys, smfel.agent.learner; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "['scipy.linalg._fblas', 'scipy.linalg._flapack']"
