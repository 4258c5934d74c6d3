"""``exact``: sum the devices' sufficient statistics and solve the ridge problem once.

For the ELM output layer with a fixed, shared hidden layer, the weighted ridge solution over the
union of every device's beats is ``beta = (sum_k U_k + I/C)^-1 sum_k V_k`` with
``U_k = sum h h^T`` and ``V_k = sum h t^T`` (Huang et al., "Extreme learning machine for
regression and multiclass classification", IEEE TSMC-B 42(2), 2012, eq. 38; the distributed form
is that of "Distributed extreme learning machine with kernels based on MapReduce" and of the
additive statistics of Liang et al. 2006). Statistics are additive, so the result equals the
centralised fit on the pooled beats in one round, in any order; late devices, and earlier rounds
(``previous``), simply add in, and the ``I/C`` ridge term is added exactly once. ``C`` and the
class weights folded into ``U_k``/``V_k`` must be the devices' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from smfel.aggregator.strategies.base import (
    F64,
    AcceptedUpdate,
    AggregationError,
    GlobalState,
    UpdateKind,
    canonical_order,
    check_uniform,
)

__all__ = ["Exact", "solve_ridge", "sum_statistics"]


def sum_statistics(
    updates: Sequence[AcceptedUpdate],
) -> tuple[F64, F64, np.ndarray, int]:
    """``(sum U, sum V, sum class_counts, sum n)`` over ``updates`` in canonical order."""
    ordered = canonical_order(updates)
    U = np.zeros_like(ordered[0].U)
    V = np.zeros_like(ordered[0].V)
    counts = np.zeros_like(ordered[0].class_counts)
    n = 0
    for u in ordered:
        U += u.U
        V += u.V
        counts += u.class_counts
        n += u.n_samples
    return U, V, counts, n


def solve_ridge(U: F64, V: F64, C: float) -> F64:
    """``(U + I/C)^-1 V`` by Cholesky on the symmetrised matrix."""
    A = 0.5 * (U + U.T)
    A[np.diag_indices(A.shape[0])] += 1.0 / C
    return np.asarray(cho_solve(cho_factor(A), V), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Exact:
    """Exact federated ridge regression from summed statistics.

    ``C`` is the ridge parameter the devices use. ``min_updates`` is the quorum below which
    :meth:`aggregate` returns ``None``; ``seed`` is unused (the strategy is deterministic) and
    kept for the common constructor shape.
    """

    C: float = 1.0
    min_updates: int = 1
    seed: int = 0
    name: ClassVar[str] = "exact"
    kind: ClassVar[UpdateKind] = "stats"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.C) and self.C > 0):
            raise AggregationError(f"C must be positive and finite, got {self.C}")
        if self.min_updates < 1:
            raise AggregationError(f"min_updates must be at least 1, got {self.min_updates}")

    def aggregate(
        self, updates: Sequence[AcceptedUpdate], previous: GlobalState | None
    ) -> GlobalState | None:
        if len(updates) < self.min_updates:
            return None
        rnd = check_uniform(updates, "stats")
        U, V, counts, n = sum_statistics(updates)
        if previous is not None and previous.U is not None and previous.V is not None:
            if previous.U.shape != U.shape or previous.V.shape != V.shape:
                raise AggregationError("previous statistics do not match the updates' shapes")
            U = previous.U + U
            V = previous.V + V
            if previous.class_counts is not None:
                counts = previous.class_counts + counts
            n += previous.n_samples
        beta = solve_ridge(U, V, self.C)
        weights = {u.node_id: float(u.n_samples) for u in updates}
        return GlobalState(
            round=rnd,
            beta=beta,
            n_samples=n,
            weights=weights,
            U=U,
            V=V,
            class_counts=counts,
            reputation=previous.reputation if previous is not None else {},
        )
