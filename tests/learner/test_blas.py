"""The learner's BLAS and LAPACK routines (whichever backend is active) against numpy.

Run in the device tier too, so the emulated aarch64 build checks numpy's aarch64 OpenBLAS;
``tests/learner/test_imports.py`` runs this module again with the scipy fallback forced.
"""

from __future__ import annotations

import copy
import os
import pickle

import numpy as np
import pytest
from numpy.typing import NDArray

from smfel.agent import OSELM, HiddenLayer, _lapack
from smfel.agent._lapack import Operand

pytestmark = pytest.mark.device

F64 = NDArray[np.float64]


def fortran(rng: np.random.Generator, rows: int, cols: int) -> F64:
    return np.asfortranarray(rng.normal(size=(rows, cols)))


def spd(rng: np.random.Generator, n: int) -> F64:
    X = rng.normal(size=(2 * n, n))
    return np.asfortranarray(X.T @ X + np.eye(n))


def upper(A: F64) -> F64:
    return np.triu(A) + np.triu(A, 1).T


def test_backend_is_named() -> None:
    assert _lapack.BACKEND in ("openblas", "scipy")
    forced = os.environ.get("SMFEL_BLAS", "").strip().lower()
    if forced in ("openblas", "scipy"):
        assert forced == _lapack.BACKEND
    if _lapack.BACKEND == "openblas":
        assert _lapack.LIBRARY is not None and "openblas64_" in _lapack.LIBRARY
        assert _lapack.FALLBACK_REASON is None
    else:
        assert _lapack.LIBRARY is None and _lapack.FALLBACK_REASON


def test_operand_describes_views_and_refuses_row_major() -> None:
    big = np.zeros((8, 6), order="F")
    op = Operand(big[:5, 1:4])  # rows 5, leading dimension 8
    assert op.shape == (5, 3) and op.ld.value == 8 and op.n.value == 5 and op.m.value == 3
    assert op.ptr.value == big[:5, 1:4].ctypes.data
    frozen = np.arange(6.0)
    frozen.flags.writeable = False
    assert Operand(frozen).ptr.value == frozen.ctypes.data
    block = np.zeros((7, 5))  # row-major, used through its transpose
    assert Operand(block.T).ptr.value == block.ctypes.data and Operand(block.T).ld.value == 5
    with pytest.raises(ValueError, match="column-major"):
        Operand(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="contiguous"):
        Operand(np.zeros(8)[::2])
    with pytest.raises(TypeError):
        Operand(np.zeros(4, dtype=np.float32))


def test_operand_copies_point_at_their_own_array() -> None:
    a = np.arange(6.0)
    op = Operand(a)
    for twin in (copy.deepcopy(op), pickle.loads(pickle.dumps(op))):  # noqa: S301 (own bytes)
        assert twin.ptr.value == twin.a.ctypes.data != op.ptr.value
        np.testing.assert_array_equal(twin.a, a)


def test_level_1_and_2_routines_equal_numpy() -> None:
    rng = np.random.default_rng(1)
    n, m = 37, 5
    S = fortran(rng, n, n)
    x, y = rng.normal(size=n), rng.normal(size=n)
    out = rng.normal(size=n)
    ref = 0.5 * upper(S) @ x + 2.0 * out
    _lapack.symv(0.5, Operand(S), Operand(x), 2.0, Operand(out))
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)

    big = fortran(rng, n + 3, m)
    A = big[:n]  # leading dimension larger than the rows
    z = rng.normal(size=m)
    ref_t = -1.0 * A.T @ y + 0.0
    _lapack.gemv(True, -1.0, Operand(A), Operand(y), 0.0, Operand(z))
    np.testing.assert_allclose(z, ref_t, rtol=1e-12, atol=1e-12)
    ref_n = 3.0 * A @ z + 1.0 * out
    _lapack.gemv(False, 3.0, Operand(A), Operand(z), 1.0, Operand(out))
    np.testing.assert_allclose(out, ref_n, rtol=1e-12, atol=1e-12)

    ref_g = A + 0.25 * np.outer(x, z)
    _lapack.ger(0.25, Operand(x), Operand(z), Operand(A))
    np.testing.assert_allclose(big[:n], ref_g, rtol=1e-12, atol=1e-12)

    assert _lapack.dot(Operand(x), Operand(y)) == pytest.approx(float(x @ y), rel=1e-12)
    ref_a = y + 1.5 * x
    _lapack.axpy(1.5, Operand(x), Operand(y))
    np.testing.assert_allclose(y, ref_a, rtol=1e-12, atol=1e-12)
    ref_s = -2.0 * x
    _lapack.scal(-2.0, Operand(x))
    np.testing.assert_allclose(x, ref_s, rtol=1e-12, atol=1e-12)


def test_level_3_routines_equal_numpy() -> None:
    rng = np.random.default_rng(2)
    n, k = 29, 7
    C = fortran(rng, n, n)
    A = fortran(rng, n, k)
    ref = np.triu(-0.5 * A @ A.T + 2.0 * C)
    _lapack.syrk(-0.5, Operand(A), 2.0, Operand(C))
    np.testing.assert_allclose(np.triu(C), ref, rtol=1e-12, atol=1e-12)

    S = fortran(rng, n, n)
    Hrow = rng.normal(size=(k, n))  # a row-major block, used through its transpose
    out = np.empty((n, k), order="F")
    _lapack.symm(1.0, Operand(S), Operand(Hrow.T), 0.0, Operand(out))
    np.testing.assert_allclose(out, upper(S) @ Hrow.T, rtol=1e-12, atol=1e-12)

    B = fortran(rng, n, 4)
    E = fortran(rng, k, 4)
    ref_t = 2.0 * Hrow @ B + 1.0 * E
    _lapack.gemm(True, 2.0, Operand(Hrow.T), Operand(B), 1.0, Operand(E))
    np.testing.assert_allclose(E, ref_t, rtol=1e-12, atol=1e-12)
    G = fortran(rng, n, k)
    ref_n = G @ E - 1.0 * B
    _lapack.gemm(False, 1.0, Operand(G), Operand(E), -1.0, Operand(B))
    np.testing.assert_allclose(B, ref_n, rtol=1e-12, atol=1e-12)

    R = np.asfortranarray(np.triu(rng.normal(size=(k, k))) + 4.0 * np.eye(k))
    R[np.tri(k, k=-1, dtype=bool)] = 5.0  # never read
    Gc = G.copy(order="F")
    _lapack.trmm(-2.0, Operand(R), Operand(Gc))
    np.testing.assert_allclose(Gc, -2.0 * G @ np.triu(R), rtol=1e-12, atol=1e-12)
    Rinv = R.copy(order="F")
    assert _lapack.trtri(Operand(Rinv)) == 0
    np.testing.assert_allclose(np.triu(Rinv) @ np.triu(R), np.eye(k), rtol=0, atol=1e-12)
    assert (Rinv[np.tri(k, k=-1, dtype=bool)] == 5.0).all()


def test_cholesky_routines_equal_numpy() -> None:
    rng = np.random.default_rng(3)
    n = 23
    A0 = spd(rng, n)
    A = A0.copy(order="F")
    A[np.tri(n, k=-1, dtype=bool)] = 7.0  # the lower triangle is never read ...
    assert _lapack.potrf(Operand(A)) == 0
    assert (A[np.tri(n, k=-1, dtype=bool)] == 7.0).all()  # ... nor written
    R = np.triu(A)
    np.testing.assert_allclose(R.T @ R, A0, rtol=1e-12, atol=1e-10)
    B = fortran(rng, n, 3)
    X = B.copy(order="F")
    assert _lapack.potrs(Operand(A), Operand(X)) == 0
    np.testing.assert_allclose(A0 @ X, B, rtol=1e-10, atol=1e-10)
    assert _lapack.potri(Operand(A)) == 0
    np.testing.assert_allclose(upper(A), np.linalg.inv(A0), rtol=1e-9, atol=1e-12)
    cleaned = A0.copy(order="F")
    assert _lapack.potrf(Operand(cleaned), clean=True) == 0
    np.testing.assert_array_equal(cleaned, R)  # the same factor, zero below the diagonal


def test_cholesky_reports_a_matrix_that_is_not_positive_definite() -> None:
    A = np.asfortranarray(np.diag([1.0, 2.0, -1.0, 4.0]))
    assert _lapack.potrf(Operand(A)) == 3  # LAPACK's 1-based index of the failing pivot


def _learner(L: int = 24, seed: int = 0) -> tuple[OSELM, F64, NDArray[np.intp]]:
    rng = np.random.default_rng(seed)
    hidden = HiddenLayer.generate(6, L, seed=seed + 1)
    learner = OSELM(hidden, C=5.0, class_weight=[0.5, 3.0, 2.0, 6.0])
    X = rng.normal(size=(90, 6))
    y = rng.integers(0, 4, size=90).astype(np.intp)
    return learner, X, y


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_learner_learns_on_its_own_buffers(how: str) -> None:
    learner, X, y = _learner()
    learner.learn_many(X[:40], y[:40])
    for i in range(40, 50):  # leave corrections held back
        learner.learn_one(X[i], int(y[i]))
    twin = (
        copy.deepcopy(learner) if how == "deepcopy" else pickle.loads(pickle.dumps(learner))  # noqa: S301 (own bytes)
    )
    frozen = learner.beta_.copy()
    twin.learn_many(X[50:85], y[50:85])  # a block of another size than the first
    twin.learn_one(X[0], int(y[0]))
    np.testing.assert_array_equal(learner.beta_, frozen)  # the original is untouched
    learner.learn_many(X[50:85], y[50:85])
    learner.learn_one(X[0], int(y[0]))
    np.testing.assert_array_equal(twin.beta_, learner.beta_)
    np.testing.assert_array_equal(twin.P_, learner.P_)


def test_replacing_beta_rebinds_the_operands() -> None:
    learner, X, y = _learner()
    reference = learner.clone()
    learner.learn_many(X[:30], y[:30])
    reference.learn_many(X[:30], y[:30])
    learner.beta_ = np.ascontiguousarray(learner.beta_)  # another array, row-major
    for i in range(30, 60):
        learner.learn_one(X[i], int(y[i]))
        reference.learn_one(X[i], int(y[i]))
    np.testing.assert_allclose(learner.beta_, reference.beta_, rtol=0, atol=1e-14)
