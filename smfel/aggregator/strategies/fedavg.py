"""``fedavg``: Federated Averaging of the devices' output weights.

McMahan, Moore, Ramage, Hampson and Aguera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017 (Algorithm 1): the global model is the average of
the client models weighted by their sample counts, ``beta = sum_k n_k beta_k / sum_k n_k``. Here
the client model is the device's RLS output layer, which starts from the last global ``beta`` it
adopted. Unlike ``exact`` this is not the centralised solution; it is the baseline the robust and
Spider Monkey strategies are compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from smfel.aggregator.strategies.base import (
    F64,
    AcceptedUpdate,
    AggregationError,
    GlobalState,
    UpdateKind,
    canonical_order,
    check_uniform,
)

__all__ = ["FedAvg", "weighted_average"]


def weighted_average(betas: Sequence[F64], weights: Sequence[float]) -> F64:
    """``sum_k w_k beta_k / sum_k w_k``, vectorised over a stacked (k, L, K) array."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or len(w) != len(betas) or (w < 0).any() or not w.sum() > 0:
        raise AggregationError("weights must be non-negative with a positive sum, one per beta")
    stack = np.stack([np.asarray(b, dtype=np.float64) for b in betas])
    return np.asarray(np.tensordot(w / w.sum(), stack, axes=1), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class FedAvg:
    """Sample-weighted averaging of ``beta`` updates; ``None`` below ``min_updates``."""

    min_updates: int = 1
    seed: int = 0
    name: ClassVar[str] = "fedavg"
    kind: ClassVar[UpdateKind] = "beta"

    def __post_init__(self) -> None:
        if self.min_updates < 1:
            raise AggregationError(f"min_updates must be at least 1, got {self.min_updates}")

    def aggregate(
        self, updates: Sequence[AcceptedUpdate], previous: GlobalState | None
    ) -> GlobalState | None:
        if len(updates) < self.min_updates:
            return None
        rnd = check_uniform(updates, "beta")
        ordered = canonical_order(updates)
        weights = [float(u.n_samples) for u in ordered]
        beta = weighted_average([u.beta for u in ordered], weights)
        total = sum(u.n_samples for u in ordered)
        return GlobalState(
            round=rnd,
            beta=beta,
            n_samples=total,
            weights={u.node_id: float(u.n_samples) / total for u in ordered},
            reputation=previous.reputation if previous is not None else {},
        )
