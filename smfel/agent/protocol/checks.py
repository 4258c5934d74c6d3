"""Checks that need state or a model: replayed nonces and the bounds of sufficient statistics.

The aggregator's validation pipeline owns the registry (enrolled and revoked keys, the open
round, already accepted updates); these are the pieces of it that belong to the protocol.

Statistics bounds (DESIGN.md, "Wire protocol"): for hidden activations bounded by 1 in absolute
value (sigmoid, tanh) and per-beat weights whose sum over the ``n`` beats is at most
``weight_bound * n`` (unit weights, and the balanced class weights of the learner, give
``weight_bound = 1``):

* ``U = sum w h h^T`` is symmetric positive semi-definite with ``trace(U) <= weight_bound n L``;
* for a sigmoid layer ``h > 0``, so ``U >= 0`` and ``V >= 0`` element-wise;
* Cauchy-Schwarz bounds every ``V[i, c] = sum_(beats of c) w h_i`` by
  ``V[i, c]^2 <= U[i, i] * weight_bound * n``, so a large ``V`` cannot hide behind a small ``U``;
* ``class_counts`` are non-negative and sum to at most ``n``.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent.protocol import _fields as f
from smfel.agent.protocol.reasons import Reason, Rejected

__all__ = ["NonceCache", "check_statistics_bounds"]


class NonceCache:
    """Remembers ``(key_id, nonce)`` pairs for ``window`` so a replay inside it is refused.

    Envelopes older than the parser's ``max_age`` are refused as stale anyway, so a window of
    ``max_age + max_skew`` makes replays impossible with bounded memory. At most ``max_entries``
    pairs are kept (the oldest are forgotten first). Thread-safe.
    """

    def __init__(self, window: dt.timedelta, *, max_entries: int = 1_000_000) -> None:
        if window <= dt.timedelta(0) or max_entries <= 0:
            raise ValueError("window and max_entries must be positive")
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], dt.datetime] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def check_and_add(self, key_id: str, nonce: str, now: dt.datetime | None = None) -> None:
        """Record the pair; ``Rejected(replayed_nonce)`` if it was seen inside the window."""
        t = f.now_utc(now)
        with self._lock:
            self._expire(t)
            pair = (key_id, nonce)
            if pair in self._seen:
                raise Rejected(Reason.REPLAYED_NONCE, f"nonce {nonce} of {key_id} seen before")
            self._seen[pair] = t
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)

    def _expire(self, now: dt.datetime) -> None:
        limit = now - self.window
        while self._seen:
            seen_at = next(iter(self._seen.values()))
            if seen_at >= limit:
                break
            self._seen.popitem(last=False)


def _out(detail: str) -> Rejected:
    return Rejected(Reason.OUT_OF_BOUNDS, detail)


def check_statistics_bounds(
    U: NDArray[Any],
    V: NDArray[Any],
    n: int,
    n_hidden: int,
    activation: str,
    *,
    class_counts: NDArray[Any] | None = None,
    weight_bound: float = 1.0,
    tol: float = 1e-6,
) -> None:
    """Raise ``Rejected`` (``bad_shape``, ``not_finite`` or ``out_of_bounds``) unless the
    statistics could come from ``n`` real beats through a bounded activation."""
    L = n_hidden
    if U.shape != (L, L) or V.ndim != 2 or V.shape[0] != L:
        raise Rejected(
            Reason.BAD_SHAPE, f"U {U.shape} and V {V.shape} must be ({L}, {L}), ({L}, K)"
        )
    if not (np.isfinite(U).all() and np.isfinite(V).all()):
        raise Rejected(Reason.NOT_FINITE, "U or V holds NaN or infinity")
    if n < 0:
        raise _out(f"n = {n} is negative")
    Uf, Vf = np.asarray(U, dtype=np.float64), np.asarray(V, dtype=np.float64)
    scale = max(1.0, float(np.abs(Uf).max(initial=0.0)))
    if np.abs(Uf - Uf.T).max(initial=0.0) > tol * scale:
        raise _out("U is not symmetric")
    mass = weight_bound * n  # the most total beat weight n beats can carry
    trace = float(np.trace(Uf))
    if activation in ("sigmoid", "tanh") and trace > mass * L * (1 + tol) + tol:
        raise _out(f"trace(U) = {trace:.6g} exceeds n*L = {mass * L:.6g}")
    diag = np.diag(Uf)
    if diag.min(initial=0.0) < -tol * scale:
        raise _out("U has a negative diagonal entry")
    shift = tol * max(scale, trace)
    try:
        # Cholesky of the slightly shifted matrix exists iff no eigenvalue is below -shift;
        # about twice as fast as computing the eigenvalues.
        np.linalg.cholesky(Uf + shift * np.eye(L))
    except np.linalg.LinAlgError:
        lowest = float(np.linalg.eigvalsh(Uf).min(initial=0.0))
        raise _out(f"U is not positive semi-definite (eigenvalue {lowest:.3g})") from None
    if activation == "sigmoid" and (
        Uf.min(initial=0.0) < -tol * scale or Vf.min(initial=0.0) < -tol * scale
    ):
        raise _out("a sigmoid layer gives U >= 0 and V >= 0 element-wise")
    bound = np.clip(diag, 0.0, None)[:, None] * mass
    if (Vf * Vf > bound * (1 + tol) + tol * scale).any():
        raise _out("V[i, c]^2 exceeds U[i, i] * n (Cauchy-Schwarz)")
    if class_counts is not None:
        c = np.asarray(class_counts)
        if c.shape != (V.shape[1],) or c.dtype.kind not in "iu":
            raise Rejected(Reason.BAD_SHAPE, f"class_counts must be ({V.shape[1]},) integers")
        if int(c.min(initial=0)) < 0 or int(c.sum()) > n:
            raise _out(f"class_counts must be non-negative and sum to at most n = {n}")
