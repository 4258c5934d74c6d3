"""Online sequential ELM: output weights learned by (weighted) recursive least squares.

Liang, Huang, Saratchandran and Sundararajan, "A fast and accurate online sequential learning
algorithm for feedforward networks", IEEE TNN 17(6) (2006), for the block form through the
Woodbury identity; the weighted ridge objective is

    beta = argmin  sum_i w_i ||t_i - h_i beta||^2 + ||beta||^2 / C
         = (U + I/C)^-1 V,   U = sum_i w_i h_i^T h_i,   V = sum_i w_i h_i^T t_i.

``P = (U + I/C)^-1`` is updated in place with BLAS (one triangle of the symmetric matrices is
stored, so ``P`` and ``U`` are symmetric by construction). One beat at a time, the rank-one
corrections ``g g^T / den`` of ``P`` and ``w h h^T`` of ``U`` are held back for up to 32 beats,
as the columns ``g / sqrt(den)`` of ``G`` and ``sqrt(w) h`` of ``H``: ``P h`` is then
``P0 h - G G^T h``, and the corrections are applied together as one symmetric rank-k (BLAS-3)
update. This is the same arithmetic reordered, and reading ``P_`` or ``U_`` applies whatever is
held first. ``U`` and ``V`` are kept because the exact federated strategy sums them across
devices, and because a periodic exact re-solve from them removes the round-off that RLS
accumulates.

Forgetting (``forgetting < 1``) discounts old beats by ``lambda`` per beat. In directions the
data stop exciting, ``P`` then grows by ``1/lambda`` per beat without bound ("covariance windup",
Fortescue, Kershenbaum and Ydstie, Automatica 17(6), 1981); the guard suspends forgetting for an
update whenever it would lift ``trace(P)`` above ``max_trace`` (by default the initial trace
``L * C``).

The BLAS and LAPACK calls go through :mod:`smfel.agent._lapack` (numpy's OpenBLAS by ctypes) on
operands of the learner's buffers built once: a ctypes call is cheap only when its arguments are
ready.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.agent import _lapack
from smfel.agent._lapack import Operand
from smfel.agent.errors import LearnerError
from smfel.agent.hidden import HiddenLayer

__all__ = ["OSELM", "SufficientStatistics", "balanced_class_weights", "symmetric_from_upper"]

F64 = NDArray[np.float64]

_symv = _lapack.symv
_gemv = _lapack.gemv
_ger = _lapack.ger
_dot = _lapack.dot
_axpy = _lapack.axpy
_scal = _lapack.scal
_syrk = _lapack.syrk
_symm = _lapack.symm
_gemm = _lapack.gemm
_trmm = _lapack.trmm
_trtri = _lapack.trtri
_potrf = _lapack.potrf
_potri = _lapack.potri
_potrs = _lapack.potrs

#: Beats whose rank-one corrections of P and U are held back and applied as one BLAS-3 update.
_LAZY = 32
#: Largest block handled in one Woodbury step; larger ones are split (memory stays bounded).
_MAX_BLOCK = 256


def _ridge_factor(U: F64, C: float) -> F64:
    """The upper Cholesky factor ``R`` of ``U + I/C`` (``R^T R``, zero below the diagonal);
    only ``U``'s upper triangle is read."""
    A = np.array(U, dtype=np.float64, order="F")
    n = A.shape[0]
    A.flat[:: n + 1] += 1.0 / C
    info = _potrf(Operand(A), clean=True)
    if info != 0:
        raise LearnerError(
            "U + I/C is not positive definite: the statistics are not sums of w h h^T"
            if info > 0
            else f"invalid argument {-info} to the Cholesky factorisation"
        )
    return A


def _ridge_solve(R: F64, V: F64) -> F64:
    """``(R^T R)^-1 V`` in a new array."""
    X = np.array(V, dtype=np.float64, order="F")
    info = _potrs(Operand(R), Operand(X))
    if info != 0:
        raise LearnerError(f"invalid argument {-info} to the Cholesky solve")
    return X


def symmetric_from_upper(A: F64) -> F64:
    """A full symmetric copy of a matrix of which only the upper triangle is meaningful."""
    upper = np.triu(A)
    full = upper + np.triu(A, 1).T
    return np.ascontiguousarray(full)


def balanced_class_weights(counts: ArrayLike) -> F64:
    """Weights ``n / (K * n_k)`` that give every present class the same total weight.

    Classes with no samples get weight 1, so the vector is always usable as a learner parameter.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or (c < 0).any():
        raise LearnerError("counts must be a vector of non-negative numbers")
    present = c > 0
    w = np.ones_like(c)
    if present.any():
        w[present] = c[present].sum() / (present.sum() * c[present])
    return w


@dataclass(frozen=True, slots=True, eq=False)
class SufficientStatistics:
    """``U = sum w h h^T`` (L, L), ``V = sum w h t^T`` (L, K), beat count and counts per class."""

    U: F64
    V: F64
    n: int
    class_counts: NDArray[np.int64]

    def __sub__(self, other: SufficientStatistics) -> SufficientStatistics:
        return SufficientStatistics(
            self.U - other.U,
            self.V - other.V,
            self.n - other.n,
            self.class_counts - other.class_counts,
        )

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        return SufficientStatistics(
            self.U + other.U,
            self.V + other.V,
            self.n + other.n,
            self.class_counts + other.class_counts,
        )

    @classmethod
    def zeros(cls, n_hidden: int, n_classes: int) -> SufficientStatistics:
        return cls(
            np.zeros((n_hidden, n_hidden)),
            np.zeros((n_hidden, n_classes)),
            0,
            np.zeros(n_classes, dtype=np.int64),
        )

    def solve(self, C: float) -> F64:
        """The ridge solution ``(U + I/C)^-1 V``."""
        return _ridge_solve(_ridge_factor(self.U, C), np.asarray(self.V, dtype=np.float64))


class _Operands:
    """BLAS operands of a learner's buffers and of the views the updates use, built once.

    ``G[j]``, ``H[j]`` and ``c[j]`` are the first ``j`` held columns (and entries); ``g[j]`` is
    column ``j`` of ``G``, where the next beat's ``P h`` is written; ``Vcol[k]`` is column ``k``
    of ``V``; ``diag`` is the diagonal of ``P`` (a numpy view: taking it anew every beat would
    allocate).
    """

    __slots__ = ("G", "H", "P", "U", "V", "Vcol", "beta", "c", "diag", "e", "g", "h")

    def __init__(self, learner: OSELM) -> None:
        Gbuf, Hbuf, c = learner._Gbuf, learner._Hbuf, learner._c
        self.P = Operand(learner._P)
        self.diag = np.diagonal(learner._P)
        self.U = Operand(learner._U)
        self.beta = Operand(learner.beta_)
        self.V = Operand(learner.V_)
        self.Vcol = [Operand(learner.V_[:, k]) for k in range(learner.V_.shape[1])]
        self.h = Operand(learner._h)
        self.e = Operand(learner._e)
        self.g = [Operand(Gbuf[:, j]) for j in range(_LAZY)]
        self.G = [Operand(Gbuf[:, :j]) for j in range(_LAZY + 1)]
        self.H = [Operand(Hbuf[:, :j]) for j in range(_LAZY + 1)]
        self.c = [Operand(c[:j]) for j in range(_LAZY + 1)]


class _Block:
    """Work arrays of a block update of ``m`` beats, with their operands.

    Kept for the next block of the same size (a run of blocks usually has one size), which
    saves building five operands and arrays per block; the memory is one block's temporaries,
    and the device, which learns one beat at a time, never allocates it.
    """

    __slots__ = ("E", "G", "Hw", "S", "Sdiag", "T", "m", "rows")

    def __init__(self, L: int, K: int, m: int) -> None:
        self.m = m
        self.G = Operand(np.empty((L, m), order="F"))  # P H^T, then G R^-1
        self.S = Operand(np.empty((m, m), order="F"))  # H P H^T + W^-1, then R, then R^-1
        self.Sdiag = np.einsum("ii->i", self.S.a)  # a writable view of the diagonal
        self.E = Operand(np.empty((m, K), order="F"))  # T - H beta, then S^-1 (T - H beta)
        self.T = Operand(np.empty((m, K), order="F"))  # W T
        self.Hw = Operand(np.empty((L, m), order="F"))  # (W^1/2 H)^T
        self.rows = np.arange(m)


class OSELM:
    """An ELM classifier whose output weights are learned online by weighted RLS.

    Parameters are stored as given (scikit-learn style); learned state (``beta_``, ``P_``,
    ``U_``, ``V_``, ``n_seen_``, ``class_counts_``) appears on the first call to a ``learn``
    method and is then overwritten in place, so memory per update is constant.

    Parameters
    ----------
    hidden:
        The fixed hidden layer, shared by the federation.
    classes:
        Class names; labels are indices into this sequence.
    C:
        Ridge parameter: the objective adds ``||beta||^2 / C``.
    class_weight:
        Weight of a beat of each class (the N class is about 90% of beats), or ``None`` for 1.
    forgetting:
        ``lambda`` in (0, 1]; 1 keeps every beat (and is what exact federation needs).
    max_trace:
        The windup guard's bound on ``trace(P)``; ``None`` means ``L * C``.
    resolve_every:
        Re-solve exactly from ``U`` and ``V`` every this many beats; 0 never.
    """

    def __init__(
        self,
        hidden: HiddenLayer,
        classes: Sequence[str] = ("N", "S", "V", "F"),
        *,
        C: float = 1.0,
        class_weight: ArrayLike | None = None,
        forgetting: float = 1.0,
        max_trace: float | None = None,
        resolve_every: int = 0,
    ) -> None:
        self.hidden = hidden
        self.classes = tuple(classes)
        self.C = C
        self.class_weight = class_weight
        self.forgetting = forgetting
        self.max_trace = max_trace
        self.resolve_every = resolve_every

    # -- parameters -----------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "classes": self.classes,
            "C": self.C,
            "class_weight": self.class_weight,
            "forgetting": self.forgetting,
            "max_trace": self.max_trace,
            "resolve_every": self.resolve_every,
        }

    def clone(self) -> OSELM:
        """A new, unfitted learner with the same parameters."""
        return OSELM(**self.get_params())

    @property
    def n_hidden(self) -> int:
        return self.hidden.n_hidden

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "beta_")

    def _weights(self) -> F64:
        K = self.n_classes
        if self.class_weight is None:
            return np.ones(K)
        w = np.asarray(self.class_weight, dtype=np.float64)
        if w.shape != (K,) or not np.isfinite(w).all() or (w <= 0).any():
            raise LearnerError(f"class_weight must be {K} positive finite numbers, got {w!r}")
        return w

    def _check_params(self) -> None:
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise LearnerError(f"classes must be at least two distinct names, got {self.classes}")
        if not (np.isfinite(self.C) and self.C > 0):
            raise LearnerError(f"C must be positive and finite, got {self.C}")
        if not (0.0 < self.forgetting <= 1.0):
            raise LearnerError(f"forgetting must be in (0, 1], got {self.forgetting}")
        if self.max_trace is not None and not self.max_trace > 0:
            raise LearnerError(f"max_trace must be positive, got {self.max_trace}")
        if self.resolve_every < 0:
            raise LearnerError(f"resolve_every must be >= 0, got {self.resolve_every}")
        self._weights()

    # -- state ----------------------------------------------------------------------------
    def _init_state(self) -> None:
        self._check_params()
        L, K = self.n_hidden, self.n_classes
        self.class_weight_ = self._weights()
        self._P: F64 = np.asfortranarray(np.eye(L) * self.C)
        self.beta_: F64 = np.zeros((L, K), order="F")
        self._U: F64 = np.zeros((L, L), order="F")
        self.V_: F64 = np.zeros((L, K), order="F")
        self.n_seen_ = 0
        self.class_counts_ = np.zeros(K, dtype=np.int64)
        self.since_resolve_ = 0
        self.trace_limit_ = float(self.max_trace) if self.max_trace is not None else L * self.C
        # Work buffers reused by every update.
        self._h = np.empty(L)
        self._e = np.empty(K)
        self._pending = 0
        self._Gbuf = np.empty((L, _LAZY), order="F")
        self._Hbuf = np.empty((L, _LAZY), order="F")
        self._hcols = [self._Hbuf[:, j] for j in range(_LAZY)]
        self._c = np.empty(_LAZY)
        self._ops = _Operands(self)
        self._block: _Block | None = None

    def _operands(self) -> _Operands:
        """The buffers' operands, rebuilt if ``beta_`` or ``V_`` was replaced by another array."""
        ops = self._ops
        if ops.beta.a is not self.beta_ or ops.V.a is not self.V_:
            self.beta_ = np.asfortranarray(self.beta_, dtype=np.float64)
            self.V_ = np.asfortranarray(self.V_, dtype=np.float64)
            ops = self._ops = _Operands(self)
        return ops

    def __getstate__(self) -> dict[str, Any]:
        # Operands hold addresses and views, which a copy must not share: rebuilt on arrival.
        state = self.__dict__.copy()
        state.pop("_ops", None)
        state.pop("_hcols", None)
        if "_block" in state:
            state["_block"] = None  # rebuilt by the next block update
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_Hbuf" in state:
            self._hcols = [self._Hbuf[:, j] for j in range(_LAZY)]
            self._ops = _Operands(self)

    @property
    def P_(self) -> F64:  # noqa: N802 (matrix names follow the papers)
        """``P = (U + I/C)^-1``; only the upper triangle is meaningful."""
        self._flush()
        return self._P

    @property
    def U_(self) -> F64:  # noqa: N802
        """``U = sum w h h^T``; only the upper triangle is meaningful."""
        self._flush()
        return self._U

    def _flush(self) -> None:
        """Apply the held-back rank-one corrections of ``P`` and ``U`` as rank-k updates."""
        j = self._pending
        if not j:
            return
        ops = self._ops
        _syrk(-1.0, ops.G[j], 1.0, ops.P)
        _syrk(1.0, ops.H[j], 1.0, ops.U)
        self._pending = 0

    def _ensure(self) -> None:
        if not self.is_fitted:
            self._init_state()

    def _label(self, y: int) -> int:
        yi = int(y)
        if yi != y or not 0 <= yi < self.n_classes:
            raise LearnerError(f"label must be an integer in [0, {self.n_classes}), got {y!r}")
        return yi

    # -- learning -------------------------------------------------------------------------
    def learn_one(self, x: ArrayLike, y: int) -> OSELM:
        """Learn one beat: feature vector ``x`` (d,) with class index ``y``."""
        self._ensure()
        h = self.hidden.transform_one(x, out=self._h)
        return self._update_one(h, self._label(y))

    def learn_hidden_one(self, h: ArrayLike, y: int) -> OSELM:
        """Learn one beat whose hidden vector ``h`` (L,) was computed elsewhere (the runtime)."""
        self._ensure()
        hv = np.asarray(h, dtype=np.float64)
        if hv.shape != (self.n_hidden,):
            raise LearnerError(f"h must be {self.n_hidden} finite numbers, got shape {hv.shape}")
        self._h[...] = hv
        return self._update_one(self._h, self._label(y))

    def _forget(self, steps: int) -> None:
        lam = self.forgetting**steps
        self._flush()
        # Only the upper triangle is meaningful; its diagonal is the trace.
        if float(self._ops.diag.sum()) / lam <= self.trace_limit_:
            self._P *= 1.0 / lam
            self._U *= lam
            self.V_ *= lam

    def _update_one(self, h: F64, y: int) -> OSELM:
        """Learn the beat whose hidden vector is ``h`` (copied into ``self._h`` if elsewhere)."""
        if h is not self._h:
            self._h[...] = h
        w = float(self.class_weight_[y])
        if self.forgetting < 1.0:
            self._forget(1)
        ops = self._operands()
        hv = ops.h
        j = self._pending
        g = ops.g[j]  # the next held column: P h is computed in place
        _symv(1.0, ops.P, hv, 0.0, g)
        if j:
            # P h with the held corrections: P0 h - G G^T h.
            Gj, c = ops.G[j], ops.c[j]
            _gemv(True, 1.0, Gj, hv, 0.0, c)
            _gemv(False, -1.0, Gj, c, 1.0, g)
        den = 1.0 / w + _dot(hv, g)
        if not (math.isfinite(den) and den > 0.0):
            raise LearnerError("h must be finite numbers (the update would not be finite)")
        _gemv(True, -1.0, ops.beta, hv, 0.0, ops.e)  # e = t - beta^T h
        self._e[y] += 1.0
        s = 1.0 / math.sqrt(den)
        _scal(s, g)  # held as g / sqrt(den)
        _ger(s, g, ops.e, ops.beta)  # beta += g e^T / den
        np.multiply(self._h, math.sqrt(w), out=self._hcols[j])
        _axpy(w, hv, ops.Vcol[y])  # V[:, y] += w h
        self._pending = j + 1
        if self._pending == _LAZY or self.forgetting < 1.0:
            self._flush()
        self.n_seen_ += 1
        self.class_counts_[y] += 1
        self.since_resolve_ += 1
        if self.resolve_every and self.since_resolve_ >= self.resolve_every:
            self.resolve()
        return self

    def learn_many(self, X: ArrayLike, y: ArrayLike) -> OSELM:
        """Learn a block of beats at once (Woodbury identity): ``X`` (n, d), ``y`` (n,)."""
        self._ensure()
        H = self.hidden.transform(X)
        return self._update_many(H, self._labels(y, H.shape[0]))

    def learn_hidden_many(self, H: ArrayLike, y: ArrayLike) -> OSELM:
        """Block update from precomputed hidden vectors ``H`` (n, L)."""
        self._ensure()
        Hv = np.ascontiguousarray(H, dtype=np.float64)
        if Hv.ndim != 2 or Hv.shape[1] != self.n_hidden or not np.isfinite(Hv).all():
            raise LearnerError(f"H must be (n, {self.n_hidden}) finite numbers, got {Hv.shape}")
        return self._update_many(Hv, self._labels(y, Hv.shape[0]))

    def _labels(self, y: ArrayLike, n: int) -> NDArray[np.intp]:
        yv = np.asarray(y)
        if yv.shape != (n,):
            raise LearnerError(f"y must have shape ({n},), got {yv.shape}")
        if n and (
            not np.issubdtype(yv.dtype, np.integer) or yv.min() < 0 or yv.max() >= self.n_classes
        ):
            raise LearnerError(f"labels must be integers in [0, {self.n_classes})")
        return yv.astype(np.intp)

    def _update_many(self, H: F64, y: NDArray[np.intp]) -> OSELM:
        m = H.shape[0]
        if m > _MAX_BLOCK:
            # The Woodbury step builds an m x m matrix: bound it, whatever the caller passes.
            for i in range(0, m, _MAX_BLOCK):
                self._update_many(H[i : i + _MAX_BLOCK], y[i : i + _MAX_BLOCK])
            return self
        if m == 0:
            return self
        if m == 1:
            return self._update_one(H[0], int(y[0]))
        self._flush()
        L, K = self.n_hidden, self.n_classes
        w = self.class_weight_[y]
        if self.forgetting < 1.0:
            # Beat i of the block is discounted lambda^(m-1-i), as if learned one at a time.
            self._forget(m)
            w = w * self.forgetting ** np.arange(m - 1, -1, -1, dtype=np.float64)
        ops = self._operands()
        blk = self._block
        if blk is None or blk.m != m:
            blk = self._block = _Block(L, K, m)
        G, S, E, rows = blk.G, blk.S, blk.E, blk.rows
        Ht = Operand(np.ascontiguousarray(H).T)  # (L, m): column-major view of the row-major block
        _symm(1.0, ops.P, Ht, 0.0, G)  # G = P H^T
        _gemm(True, 1.0, Ht, G, 0.0, S)  # S = H P H^T (+ W^-1 below)
        blk.Sdiag += 1.0 / w
        if _potrf(S) != 0:  # S = R^T R, R in S's upper triangle
            raise LearnerError("block update is not positive definite (non-finite inputs?)")
        _gemm(True, -1.0, Ht, ops.beta, 0.0, E)  # E = T - H beta
        E.a[rows, y] += 1.0
        info = _potrs(S, E)  # S^-1 E
        if info != 0:
            raise LearnerError(f"invalid argument {-info} to the block solve")
        _gemm(False, 1.0, G, E, 1.0, ops.beta)  # beta += G S^-1 E
        # G R^-1 as R^-1 (m x m, cheap) and then a triangular product: in OpenBLAS 0.3.31 this
        # takes half the time of the triangular solve with L right-hand sides (L = 512, m = 50).
        if _trtri(S) != 0:
            raise LearnerError("block update is not positive definite (non-finite inputs?)")
        _trmm(1.0, S, G)
        _syrk(-1.0, G, 1.0, ops.P)  # P -= G S^-1 G^T
        np.multiply(H, np.sqrt(w)[:, None], out=blk.Hw.a.T)
        _syrk(1.0, blk.Hw, 1.0, ops.U)  # U += H^T W H
        T = blk.T.a
        T.fill(0.0)
        T[rows, y] = w
        _gemm(False, 1.0, Ht, blk.T, 1.0, ops.V)  # V += H^T W T
        self.n_seen_ += m
        np.add.at(self.class_counts_, y, 1)
        self.since_resolve_ += m
        if self.resolve_every and self.since_resolve_ >= self.resolve_every:
            self.resolve()
        return self

    def resolve(self) -> OSELM:
        """Recompute ``beta`` and ``P`` exactly from ``U`` and ``V`` (removes RLS round-off)."""
        self._ensure()
        R = _ridge_factor(self.U_, self.C)
        self.beta_[...] = _ridge_solve(R, self.V_)
        if _potri(Operand(R)) != 0:  # upper triangle of (R^T R)^-1, in place of R
            raise LearnerError("U + I/C is singular")
        self._P[...] = R
        self.since_resolve_ = 0
        return self

    # -- prediction -----------------------------------------------------------------------
    def _beta(self) -> F64:
        if not self.is_fitted:
            return np.zeros((self.n_hidden, self.n_classes))
        return self.beta_

    def predict_one(self, x: ArrayLike) -> F64:
        """Class scores (K,) for one feature vector; the predicted class is their argmax."""
        return self.hidden.transform_one(x) @ self._beta()

    def predict_many(self, X: ArrayLike) -> F64:
        """Class scores (n, K) for a batch of feature vectors."""
        return self.hidden.transform(X) @ self._beta()

    def predict_hidden_many(self, H: ArrayLike) -> F64:
        return np.asarray(H, dtype=np.float64) @ self._beta()

    # -- federation -----------------------------------------------------------------------
    def statistics(self) -> SufficientStatistics:
        """A copy of the accumulated statistics, full symmetric ``U``."""
        self._ensure()
        return SufficientStatistics(
            symmetric_from_upper(self.U_),
            np.ascontiguousarray(self.V_),
            int(self.n_seen_),
            self.class_counts_.copy(),
        )

    def covariance(self) -> F64:
        """A full symmetric copy of ``P = (U + I/C)^-1``."""
        self._ensure()
        return symmetric_from_upper(self.P_)

    def adopt(self, beta: ArrayLike, statistics: SufficientStatistics | None = None) -> OSELM:
        """Take a global model: ``beta``, and with the pooled statistics also ``U``, ``V``, ``P``.

        With statistics, learning continues exactly as if this device had learned every beat
        of the federation; without them only ``beta`` changes and ``P`` keeps the local
        curvature.
        """
        self._ensure()
        b = np.asarray(beta, dtype=np.float64)
        L, K = self.n_hidden, self.n_classes
        if b.shape != (L, K) or not np.isfinite(b).all():
            raise LearnerError(f"beta must be ({L}, {K}) finite numbers, got {b.shape}")
        if statistics is not None:
            if statistics.U.shape != (L, L) or statistics.V.shape != (L, K):
                raise LearnerError("statistics do not match this learner's dimensions")
            self.U_[...] = statistics.U
            self.V_[...] = statistics.V
            self.n_seen_ = int(statistics.n)
            self.class_counts_[...] = statistics.class_counts
            self.resolve()
        self.beta_[...] = b
        return self
