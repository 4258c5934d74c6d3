"""A fresh interpreter for the checks that depend on what a process has imported or mapped.

Such checks cannot run in the test process (everything is imported there already), nor in the
emulated device tier, whose interpreter cannot start native children.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["REPO", "run_python"]

REPO = Path(__file__).resolve().parents[2]


def run_python(code: str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """The standard output of ``python -c code args...`` run from the repository's root (so
    ``tests`` imports), with ``env`` added to this process's environment. A child that fails
    fails the test with its standard error."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        raise AssertionError(f"the child interpreter exited with {out.returncode}:\n{out.stderr}")
    return out.stdout
