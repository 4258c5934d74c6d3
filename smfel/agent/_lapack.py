"""The BLAS and LAPACK routines of the learner, without importing ``scipy.linalg``.

Importing the ``scipy.linalg`` package brings in some 250 modules (the array-API layer, sparse
arrays, special functions) for about 27 MB of resident memory and 0.2 s of CPU, while the
learner calls a dozen routines of its two compiled wrappers, ``_fblas`` and ``_flapack``: f2py
extensions that need numpy and nothing else from scipy. On a board that budgets 80 MB for the
whole agent this matters, so the two extensions are loaded from their files directly (about
8 MB). They are the very objects ``scipy.linalg.blas`` and ``scipy.linalg.lapack`` hand out, and
they are registered under their usual names, so a later ``import scipy.linalg`` in the same
process reuses them. If scipy's layout ever differs, the public import is used instead.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "dgemm",
    "dgemv",
    "dger",
    "dpotrf",
    "dpotri",
    "dpotrs",
    "dsymm",
    "dsymv",
    "dsyr",
    "dsyrk",
    "dtrsm",
]


def _load(name: str) -> ModuleType | None:
    """``scipy.linalg.<name>`` loaded from its file without the package's ``__init__``."""
    full = f"scipy.linalg.{name}"
    if full in sys.modules:
        return sys.modules[full]
    try:
        scipy_spec = importlib.util.find_spec("scipy")
    except (ImportError, ValueError):
        return None
    if scipy_spec is None or not scipy_spec.submodule_search_locations:
        return None
    folder = Path(next(iter(scipy_spec.submodule_search_locations))) / "linalg"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if not path.is_file():
            continue
        spec = importlib.util.spec_from_file_location(full, path)
        if spec is None or spec.loader is None:
            return None
        try:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except ImportError:
            return None
        sys.modules[full] = module
        return module
    return None


def _modules() -> tuple[Any, Any]:
    fblas, flapack = _load("_fblas"), _load("_flapack")
    if fblas is None or flapack is None:
        from scipy.linalg import blas, lapack

        return blas, lapack
    return fblas, flapack


_blas, _lapack = _modules()

dgemm: Any = _blas.dgemm
dgemv: Any = _blas.dgemv
dger: Any = _blas.dger
dsymm: Any = _blas.dsymm
dsymv: Any = _blas.dsymv
dsyr: Any = _blas.dsyr
dsyrk: Any = _blas.dsyrk
dtrsm: Any = _blas.dtrsm
dpotrf: Any = _lapack.dpotrf
dpotri: Any = _lapack.dpotri
dpotrs: Any = _lapack.dpotrs
