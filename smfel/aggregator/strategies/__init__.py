"""Aggregation strategies, one module each behind the one interface of :mod:`.base`.

:func:`make_strategy` builds one by name; new strategies register in :data:`STRATEGIES`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from smfel.aggregator.strategies.base import (
    UPDATE_KINDS,
    AcceptedUpdate,
    AggregationError,
    GlobalState,
    Strategy,
    UpdateKind,
    canonical_order,
)
from smfel.aggregator.strategies.exact import Exact
from smfel.aggregator.strategies.fedavg import FedAvg

__all__ = [
    "STRATEGIES",
    "UPDATE_KINDS",
    "AcceptedUpdate",
    "AggregationError",
    "Exact",
    "FedAvg",
    "GlobalState",
    "Strategy",
    "UpdateKind",
    "canonical_order",
    "make_strategy",
]

STRATEGIES: dict[str, type[Exact] | type[FedAvg]] = {
    "exact": Exact,
    "fedavg": FedAvg,
}


def make_strategy(name: str, **params: Any) -> Strategy:
    """The strategy called ``name``; of ``params`` each takes those it has (``C`` for
    ``exact``, ``min_updates`` and ``seed`` for all)."""
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise AggregationError(
            f"unknown strategy {name!r}; expected one of {sorted(STRATEGIES)}"
        ) from None
    accepted = {f.name for f in dataclasses.fields(factory) if f.init}
    return factory(**{k: v for k, v in params.items() if k in accepted})
