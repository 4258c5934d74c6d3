"""The BLAS and LAPACK routines of the learner, called in numpy's own OpenBLAS.

numpy's wheels bundle an OpenBLAS (``numpy.libs/libscipy_openblas64_-*.so``: 64-bit integers,
symbols named ``scipy_cblas_dgemm64_``, ``scipy_dpotrf_64_``), which numpy maps into the
process anyway. scipy's wheels bundle a second one; reaching the routines through scipy's
wrappers maps it too: 10 to 14 MB of resident memory on a board that budgets 80 MB for the
whole agent. So the routines are called here through ``ctypes`` in numpy's library, and scipy
is not imported at all.

Where numpy's library is not found, or lacks a routine, or is not a 64-bit-integer OpenBLAS
(a distribution's numpy linked to the system BLAS, macOS Accelerate), the same routines come
from scipy's compiled f2py wrappers ``_fblas``/``_flapack``, loaded from their files without
the ``scipy.linalg`` package (which would bring some 250 modules). :data:`BACKEND` says which
is active; the environment variable ``SMFEL_BLAS`` chooses: ``openblas`` (numpy's library or
an ImportError), ``scipy`` (the wrappers), anything else or unset (numpy's library if usable).

The routines work in place on :class:`Operand` objects: an array together with its address and
dimensions as ctypes values, computed once. A ctypes call costs about 0.8 us when its arguments
are already ctypes values and several times that when each array is converted on every call, so
the learner builds operands of its persistent buffers once and hands them in. Matrices are
column-major (or transposed views of row-major arrays); symmetric and triangular ones are read
and written in their upper triangle.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BACKEND",
    "FALLBACK_REASON",
    "LIBRARY",
    "Operand",
    "axpy",
    "dot",
    "gemm",
    "gemv",
    "ger",
    "potrf",
    "potri",
    "potrs",
    "scal",
    "symm",
    "symv",
    "syrk",
    "trmm",
    "trtri",
]

F64 = NDArray[np.float64]

_I64 = ctypes.c_int64
_P = ctypes.c_void_p
_D = ctypes.c_double
_E = ctypes.c_int  # CBLAS enumerations are C ints
_S = ctypes.c_char_p
_L = ctypes.c_size_t  # gfortran's hidden length of a CHARACTER argument

# CBLAS enumerations.
_COL = _E(102)
_NOTRANS, _TRANS = _E(111), _E(112)
_UPPER = _E(121)
_NONUNIT = _E(131)
_LEFT, _RIGHT = _E(141), _E(142)
_ONE = _I64(1)
_U = b"U"
_LEN1 = _L(1)
_CHAR = ctypes.c_char
_addressof = ctypes.addressof


def _address(a: F64) -> int:
    """The address of ``a``'s first element.

    ``a.ctypes.data`` costs about 1 us; a ctypes view of the buffer about a quarter of that,
    which counts for the temporaries of every block update. The buffer view needs a writable
    array contiguous in C order, as column-major matrices are once transposed.
    """
    view: Any = a.T if a.ndim == 2 and not a.flags.c_contiguous else a
    try:
        return _addressof(_CHAR.from_buffer(view))
    except (TypeError, ValueError, BufferError):
        return int(a.ctypes.data)


class Operand:
    """A float64 vector or column-major matrix with its BLAS description, computed once.

    ``ptr``, ``n``, ``m`` and ``ld`` are the address, the rows, the columns and the leading
    dimension as ctypes values. The operand keeps the array alive, so the address stays valid;
    a copy (``copy``, ``pickle``) is rebuilt from its array, so it gets the copy's address.
    """

    __slots__ = ("a", "ld", "m", "n", "ptr", "shape")

    def __init__(self, a: F64) -> None:
        if not isinstance(a, np.ndarray) or a.dtype != np.float64:
            raise TypeError("an operand is a float64 numpy array")
        item = a.itemsize
        if a.ndim == 1:
            rows, cols = a.shape[0], 1
            if rows > 1 and a.strides[0] != item:
                raise ValueError("a vector operand must be contiguous")
            ld = max(1, rows)
        elif a.ndim == 2:
            rows, cols = a.shape
            if rows > 1 and a.strides[0] != item:
                raise ValueError("a matrix operand must be column-major (contiguous columns)")
            ld = a.strides[1] // item if cols > 1 else max(1, rows)
            if a.strides[1] % item or ld < max(1, rows):
                raise ValueError("a matrix operand needs a leading dimension >= its rows")
        else:
            raise ValueError("an operand is a vector or a matrix")
        self.a = a
        self.shape = (rows, cols)
        self.ptr = _P(_address(a))
        self.n = _I64(rows)
        self.m = _I64(cols)
        self.ld = _I64(ld)

    def __reduce__(self) -> tuple[type[Operand], tuple[F64]]:
        return (Operand, (self.a,))

    def __repr__(self) -> str:
        return f"Operand({self.shape[0]}x{self.shape[1]}, ld={self.ld.value})"


# -- numpy's OpenBLAS ---------------------------------------------------------------------------

#: (name in the library without prefix and suffix, CBLAS or Fortran, argument types, result)
_SIGNATURES: dict[str, tuple[bool, list[Any], Any]] = {
    "dsymv": (True, [_E, _E, _I64, _D, _P, _I64, _P, _I64, _D, _P, _I64], None),
    "dgemv": (True, [_E, _E, _I64, _I64, _D, _P, _I64, _P, _I64, _D, _P, _I64], None),
    "dger": (True, [_E, _I64, _I64, _D, _P, _I64, _P, _I64, _P, _I64], None),
    "ddot": (True, [_I64, _P, _I64, _P, _I64], _D),
    "daxpy": (True, [_I64, _D, _P, _I64, _P, _I64], None),
    "dscal": (True, [_I64, _D, _P, _I64], None),
    "dsyrk": (True, [_E, _E, _E, _I64, _I64, _D, _P, _I64, _D, _P, _I64], None),
    "dsymm": (True, [_E, _E, _E, _I64, _I64, _D, _P, _I64, _P, _I64, _D, _P, _I64], None),
    "dgemm": (
        True,
        [_E, _E, _E, _I64, _I64, _I64, _D, _P, _I64, _P, _I64, _D, _P, _I64],
        None,
    ),
    "dtrmm": (True, [_E, _E, _E, _E, _E, _I64, _I64, _D, _P, _I64, _P, _I64], None),
    # Fortran LAPACK: every argument by reference, then the hidden lengths of the CHARACTERs.
    "dpotrf": (False, [_S, _P, _P, _P, _P, _L], None),
    "dpotri": (False, [_S, _P, _P, _P, _P, _L], None),
    "dpotrs": (False, [_S, _P, _P, _P, _P, _P, _P, _P, _L], None),
    "dtrtri": (False, [_S, _S, _P, _P, _P, _P, _L, _L], None),
    "dlaset": (False, [_S, _P, _P, _P, _P, _P, _P, _L], None),
}


#: Level-1 and level-2 routines: O(L^2) work at most.
_VECTOR = frozenset({"dsymv", "dgemv", "dger", "ddot", "daxpy", "dscal"})


def _symbol(name: str, cblas: bool) -> str:
    return f"scipy_cblas_{name}64_" if cblas else f"scipy_{name}_64_"


def _candidates() -> list[Path]:
    """numpy's bundled OpenBLAS files, those this process has already mapped first."""
    pkg = Path(np.__file__).resolve().parent
    found: list[Path] = []
    for folder, pattern in (
        (pkg.parent / "numpy.libs", "libscipy_openblas64_*"),  # Linux (manylinux) and Windows
        (pkg / ".dylibs", "libscipy_openblas64_*"),  # macOS wheels
    ):
        if folder.is_dir():
            found.extend(sorted(folder.glob(pattern)))
    found = [p for p in found if p.suffix in (".so", ".dylib", ".dll") or ".so." in p.name]
    mapped = _mapped_paths()
    return sorted(found, key=lambda p: str(p.resolve()) not in mapped)


def _mapped_paths() -> set[str]:
    try:
        with open("/proc/self/maps") as f:
            return {line.split()[-1] for line in f if "openblas" in line}
    except OSError:
        return set()


def _load_openblas() -> tuple[dict[str, Any], str]:
    """The routines of numpy's ILP64 OpenBLAS as configured ctypes functions, and its path."""
    problems: list[str] = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as err:
            problems.append(f"{path.name}: {err}")
            continue
        config = getattr(lib, "scipy_openblas_get_config64_", None)
        if config is None:
            problems.append(f"{path.name}: no scipy_openblas_get_config64_")
            continue
        config.argtypes = []
        config.restype = ctypes.c_char_p
        text = (config() or b"").decode("ascii", "replace")
        if "USE64BITINT" not in text:
            problems.append(f"{path.name}: not built with 64-bit integers ({text!r})")
            continue
        # The vector routines take microseconds: called keeping the GIL (PyDLL), they skip its
        # release and re-acquisition; the matrix routines, up to milliseconds, release it.
        held = ctypes.PyDLL(str(path))
        routines: dict[str, Any] = {}
        for name, (cblas, argtypes, restype) in _SIGNATURES.items():
            fn = getattr(held if name in _VECTOR else lib, _symbol(name, cblas), None)
            if fn is None:
                break
            fn.argtypes = argtypes
            fn.restype = restype
            routines[name] = fn
        missing = sorted(set(_SIGNATURES) - set(routines))
        if missing:
            problems.append(f"{path.name}: missing {', '.join(missing)}")
            continue
        return routines, str(path)
    raise ImportError(
        "numpy's OpenBLAS (ILP64, scipy_ prefix) not found: " + ("; ".join(problems) or "no file")
    )


def _openblas_routines(r: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """The module's routines bound to numpy's OpenBLAS (see the wrappers' docstrings below)."""
    _symv, _gemv, _ger, _dot, _axpy, _scal = (
        r["dsymv"],
        r["dgemv"],
        r["dger"],
        r["ddot"],
        r["daxpy"],
        r["dscal"],
    )
    _syrk, _symm, _gemm, _trmm = r["dsyrk"], r["dsymm"], r["dgemm"], r["dtrmm"]
    _potrf, _potri, _potrs, _trtri = r["dpotrf"], r["dpotri"], r["dpotrs"], r["dtrtri"]
    _laset = r["dlaset"]
    ref = ctypes.byref
    zero = _D(0.0)

    def symv(alpha: float, A: Operand, x: Operand, beta: float, y: Operand) -> None:
        _symv(_COL, _UPPER, A.n, alpha, A.ptr, A.ld, x.ptr, _ONE, beta, y.ptr, _ONE)

    def gemv(trans: bool, alpha: float, A: Operand, x: Operand, beta: float, y: Operand) -> None:
        t = _TRANS if trans else _NOTRANS
        _gemv(_COL, t, A.n, A.m, alpha, A.ptr, A.ld, x.ptr, _ONE, beta, y.ptr, _ONE)

    def ger(alpha: float, x: Operand, y: Operand, A: Operand) -> None:
        _ger(_COL, A.n, A.m, alpha, x.ptr, _ONE, y.ptr, _ONE, A.ptr, A.ld)

    def dot(x: Operand, y: Operand) -> float:
        return float(_dot(x.n, x.ptr, _ONE, y.ptr, _ONE))

    def axpy(alpha: float, x: Operand, y: Operand) -> None:
        _axpy(x.n, alpha, x.ptr, _ONE, y.ptr, _ONE)

    def scal(alpha: float, x: Operand) -> None:
        _scal(x.n, alpha, x.ptr, _ONE)

    def syrk(alpha: float, A: Operand, beta: float, C: Operand) -> None:
        _syrk(_COL, _UPPER, _NOTRANS, A.n, A.m, alpha, A.ptr, A.ld, beta, C.ptr, C.ld)

    def symm(alpha: float, A: Operand, B: Operand, beta: float, C: Operand) -> None:
        _symm(_COL, _LEFT, _UPPER, C.n, C.m, alpha, A.ptr, A.ld, B.ptr, B.ld, beta, C.ptr, C.ld)

    def gemm(trans_a: bool, alpha: float, A: Operand, B: Operand, beta: float, C: Operand) -> None:
        ta, k = (_TRANS, A.n) if trans_a else (_NOTRANS, A.m)
        _gemm(_COL, ta, _NOTRANS, C.n, C.m, k, alpha, A.ptr, A.ld, B.ptr, B.ld, beta, C.ptr, C.ld)

    def trmm(alpha: float, R: Operand, B: Operand) -> None:
        _trmm(_COL, _RIGHT, _UPPER, _NOTRANS, _NONUNIT, B.n, B.m, alpha, R.ptr, R.ld, B.ptr, B.ld)

    def potrf(A: Operand, clean: bool = False) -> int:
        info = _I64(0)
        _potrf(_U, ref(A.n), A.ptr, ref(A.ld), ref(info), _LEN1)
        n = A.shape[0]
        if clean and n > 1:  # zero below the diagonal: the (1, 0) block, n-1 square, lower
            below = _P((A.ptr.value or 0) + A.a.itemsize)
            size = _I64(n - 1)
            _laset(b"L", ref(size), ref(size), ref(zero), ref(zero), below, ref(A.ld), _LEN1)
        return int(info.value)

    def trtri(R: Operand) -> int:
        info = _I64(0)
        _trtri(_U, b"N", ref(R.n), R.ptr, ref(R.ld), ref(info), _LEN1, _LEN1)
        return int(info.value)

    def potri(A: Operand) -> int:
        info = _I64(0)
        _potri(_U, ref(A.n), A.ptr, ref(A.ld), ref(info), _LEN1)
        return int(info.value)

    def potrs(R: Operand, B: Operand) -> int:
        info = _I64(0)
        _potrs(_U, ref(R.n), ref(B.m), R.ptr, ref(R.ld), B.ptr, ref(B.ld), ref(info), _LEN1)
        return int(info.value)

    return {
        "symv": symv,
        "gemv": gemv,
        "ger": ger,
        "dot": dot,
        "axpy": axpy,
        "scal": scal,
        "syrk": syrk,
        "symm": symm,
        "gemm": gemm,
        "trmm": trmm,
        "trtri": trtri,
        "potrf": potrf,
        "potri": potri,
        "potrs": potrs,
    }


# -- scipy's wrappers (the fallback) --------------------------------------------------------------


def _load_scipy_extension(name: str) -> ModuleType | None:
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


def _scipy_routines() -> dict[str, Callable[..., Any]]:
    """The module's routines through scipy's f2py wrappers, writing into the operands' arrays.

    f2py returns the array it was given when it could work in place (float64, Fortran order);
    otherwise it returns a new one, which is then copied back, so the in-place contract holds.
    """
    fblas: Any = _load_scipy_extension("_fblas")
    flapack: Any = _load_scipy_extension("_flapack")
    if fblas is None or flapack is None:
        from scipy.linalg import blas, lapack

        fblas, flapack = blas, lapack

    def into(out: Operand, result: Any) -> None:
        if result is not out.a:
            out.a[...] = result

    def symv(alpha: float, A: Operand, x: Operand, beta: float, y: Operand) -> None:
        into(y, fblas.dsymv(alpha, A.a, x.a, beta=beta, y=y.a, overwrite_y=1))

    def gemv(trans: bool, alpha: float, A: Operand, x: Operand, beta: float, y: Operand) -> None:
        into(y, fblas.dgemv(alpha, A.a, x.a, beta=beta, y=y.a, trans=int(trans), overwrite_y=1))

    def ger(alpha: float, x: Operand, y: Operand, A: Operand) -> None:
        into(A, fblas.dger(alpha, x.a, y.a, a=A.a, overwrite_a=1))

    def dot(x: Operand, y: Operand) -> float:
        return float(fblas.ddot(x.a, y.a))

    def axpy(alpha: float, x: Operand, y: Operand) -> None:
        into(y, fblas.daxpy(x.a, y.a, a=alpha))

    def scal(alpha: float, x: Operand) -> None:
        into(x, fblas.dscal(alpha, x.a))

    def syrk(alpha: float, A: Operand, beta: float, C: Operand) -> None:
        into(C, fblas.dsyrk(alpha, A.a, beta=beta, c=C.a, overwrite_c=1))

    def symm(alpha: float, A: Operand, B: Operand, beta: float, C: Operand) -> None:
        into(C, fblas.dsymm(alpha, A.a, B.a, beta=beta, c=C.a, overwrite_c=1))

    def gemm(trans_a: bool, alpha: float, A: Operand, B: Operand, beta: float, C: Operand) -> None:
        into(C, fblas.dgemm(alpha, A.a, B.a, beta=beta, c=C.a, trans_a=int(trans_a), overwrite_c=1))

    def trmm(alpha: float, R: Operand, B: Operand) -> None:
        into(B, fblas.dtrmm(alpha, R.a, B.a, side=1, lower=0, overwrite_b=1))

    def potrf(A: Operand, clean: bool = False) -> int:
        c, info = flapack.dpotrf(A.a, lower=0, clean=int(clean), overwrite_a=1)
        into(A, c)
        return int(info)

    def trtri(R: Operand) -> int:
        c, info = flapack.dtrtri(R.a, lower=0, unitdiag=0, overwrite_c=1)
        into(R, c)
        return int(info)

    def potri(A: Operand) -> int:
        c, info = flapack.dpotri(A.a, lower=0, overwrite_c=1)
        into(A, c)
        return int(info)

    def potrs(R: Operand, B: Operand) -> int:
        x, info = flapack.dpotrs(R.a, B.a, lower=0, overwrite_b=1)
        into(B, x)
        return int(info)

    return {
        "symv": symv,
        "gemv": gemv,
        "ger": ger,
        "dot": dot,
        "axpy": axpy,
        "scal": scal,
        "syrk": syrk,
        "symm": symm,
        "gemm": gemm,
        "trmm": trmm,
        "trtri": trtri,
        "potrf": potrf,
        "potri": potri,
        "potrs": potrs,
    }


def _select() -> tuple[str, str | None, str | None, dict[str, Callable[..., Any]]]:
    choice = os.environ.get("SMFEL_BLAS", "").strip().lower()
    if choice == "scipy":
        return "scipy", None, "SMFEL_BLAS=scipy", _scipy_routines()
    try:
        routines, path = _load_openblas()
    except ImportError as err:
        if choice == "openblas":
            raise
        return "scipy", None, str(err), _scipy_routines()
    return "openblas", path, None, _openblas_routines(routines)


#: ``"openblas"`` (numpy's library through ctypes) or ``"scipy"`` (scipy's f2py wrappers).
BACKEND: str
#: The file of numpy's OpenBLAS in use, or ``None`` with the scipy wrappers.
LIBRARY: str | None
#: Why numpy's OpenBLAS is not in use, or ``None`` when it is.
FALLBACK_REASON: str | None
BACKEND, LIBRARY, FALLBACK_REASON, _routines = _select()

#: ``y = alpha A x + beta y``, ``A`` symmetric (upper triangle read).
symv: Callable[[float, Operand, Operand, float, Operand], None] = _routines["symv"]
#: ``y = alpha op(A) x + beta y``, ``op(A) = A^T`` if ``trans``.
gemv: Callable[[bool, float, Operand, Operand, float, Operand], None] = _routines["gemv"]
#: ``A += alpha x y^T``.
ger: Callable[[float, Operand, Operand, Operand], None] = _routines["ger"]
#: ``x . y``.
dot: Callable[[Operand, Operand], float] = _routines["dot"]
#: ``y += alpha x``.
axpy: Callable[[float, Operand, Operand], None] = _routines["axpy"]
#: ``x *= alpha``.
scal: Callable[[float, Operand], None] = _routines["scal"]
#: ``C = alpha A A^T + beta C`` in the upper triangle of ``C``.
syrk: Callable[[float, Operand, float, Operand], None] = _routines["syrk"]
#: ``C = alpha A B + beta C``, ``A`` symmetric (upper triangle read).
symm: Callable[[float, Operand, Operand, float, Operand], None] = _routines["symm"]
#: ``C = alpha op(A) B + beta C``, ``op(A) = A^T`` if ``trans_a``.
gemm: Callable[[bool, float, Operand, Operand, float, Operand], None] = _routines["gemm"]
#: ``B = alpha B R``, ``R`` upper triangular.
trmm: Callable[[float, Operand, Operand], None] = _routines["trmm"]
#: ``R^-1`` in place of the upper triangular ``R``; LAPACK's info.
trtri: Callable[[Operand], int] = _routines["trtri"]
#: Cholesky ``A = R^T R`` in place, ``R`` in the upper triangle; below it ``A`` is left as it
#: was, or zeroed with ``clean``; LAPACK's info.
potrf: Callable[..., int] = _routines["potrf"]
#: ``(R^T R)^-1`` in place of ``R`` (upper triangle); LAPACK's info.
potri: Callable[[Operand], int] = _routines["potri"]
#: ``B = (R^T R)^-1 B`` in place; LAPACK's info.
potrs: Callable[[Operand, Operand], int] = _routines["potrs"]
