"""The one strategy interface and the value objects it works on.

A strategy turns the updates that passed verification for one round into the next global model.
It is a pure function of its inputs (Flower's convention, Beutel et al., "Flower: A Friendly
Federated Learning Framework", arXiv:2007.14390): it never mutates the updates or the previous
state, it does no I/O, and any randomness comes from ``seed`` and the round number, so the same
inputs always give the same output. ``None`` means "no quorum: keep the last global model".

Strategies still to come plug into the same interface: Spider Monkey Optimization over the
per-device aggregation weights (it receives its trusted validation scorer as a constructor
parameter), coordinate-wise median, trimmed mean, multi-Krum, and a reputation layer that wraps
any strategy and reads and writes :attr:`GlobalState.reputation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from smfel.agent.errors import SmfelError

__all__ = [
    "UPDATE_KINDS",
    "AcceptedUpdate",
    "AggregationError",
    "GlobalState",
    "Strategy",
    "UpdateKind",
    "canonical_order",
]

UpdateKind = Literal["stats", "beta"]
UPDATE_KINDS: tuple[UpdateKind, ...] = ("stats", "beta")

F64 = NDArray[np.float64]
_FLOAT64: np.dtype[Any] = np.dtype(np.float64)
_INT64: np.dtype[Any] = np.dtype(np.int64)
#: The arrays each kind of update carries, and their dtypes.
_NEEDS: dict[str, tuple[str, ...]] = {"stats": ("U", "V", "class_counts"), "beta": ("beta",)}
_DTYPES = {"U": _FLOAT64, "V": _FLOAT64, "class_counts": _INT64, "beta": _FLOAT64}


class AggregationError(SmfelError, ValueError):
    """Updates that cannot be aggregated together (mixed kinds or shapes)."""


def _over_bytes(a: NDArray[np.generic]) -> bool:
    """Whether ``a`` is a read-only view of a ``bytes`` object: nobody can write to its
    elements (numpy refuses to make such a view writeable, and ``bytes`` never change)."""
    if a.flags.writeable:
        return False
    base: object = a.base
    while type(base) is np.ndarray:
        base = base.base
    return type(base) is bytes


def _frozen(a: NDArray[np.generic], dtype: np.dtype[Any]) -> NDArray[np.generic]:
    """``a`` as an immutable C-ordered array of ``dtype``: as it is when it is one already (a
    view of immutable bytes, which is what the parser decodes: 8 KB not copied per ``beta``
    update at L = 256), else a read-only copy (a read-only array that owns its memory is
    copied too, since its owner may make it writeable again)."""
    if type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous and _over_bytes(a):
        return a
    out: NDArray[np.generic] = np.array(a, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, slots=True, eq=False)
class AcceptedUpdate:
    """One verified update, reduced to what aggregation needs.

    ``stats`` updates carry ``U`` (L, L), ``V`` (L, K) and ``class_counts`` (K,); ``beta``
    updates carry ``beta`` (L, K). The arrays are immutable: one that is already a read-only
    view of ``bytes`` of the right dtype (the parser's) is kept, any other is copied read-only.
    """

    node_id: str
    round: int
    kind: UpdateKind
    n_samples: int
    update_hash: str
    arrays: Mapping[str, NDArray[np.generic]]

    def __post_init__(self) -> None:
        if self.kind not in UPDATE_KINDS:
            raise AggregationError(f"kind must be one of {UPDATE_KINDS}, got {self.kind!r}")
        need, arrays = _NEEDS[self.kind], self.arrays
        frozen: dict[str, NDArray[np.generic]] = {}
        for n in need:
            if n not in arrays:
                missing = [m for m in need if m not in arrays]
                raise AggregationError(
                    f"a {self.kind} update needs arrays {need}, missing {missing}"
                )
            frozen[n] = _frozen(arrays[n], _DTYPES[n])
        object.__setattr__(self, "arrays", frozen)

    @property
    def beta(self) -> F64:
        return self.arrays["beta"].astype(np.float64, copy=False)

    @property
    def U(self) -> F64:  # noqa: N802 (the papers' name)
        return self.arrays["U"].astype(np.float64, copy=False)

    @property
    def V(self) -> F64:  # noqa: N802
        return self.arrays["V"].astype(np.float64, copy=False)

    @property
    def class_counts(self) -> NDArray[np.int64]:
        return self.arrays["class_counts"].astype(np.int64, copy=False)


@dataclass(frozen=True, slots=True, eq=False)
class GlobalState:
    """The global model after a round.

    ``beta`` (L, K) is what devices adopt. ``U``/``V``/``class_counts`` are the pooled statistics
    when the strategy keeps them (``exact``), so devices can continue learning exactly as if they
    had seen every beat. ``weights`` is each contributing node's aggregation weight (what the
    ledger records); ``reputation`` is carried from round to round for a reputation layer.
    """

    round: int
    beta: F64
    n_samples: int
    weights: Mapping[str, float] = field(default_factory=dict)
    U: F64 | None = None
    V: F64 | None = None
    class_counts: NDArray[np.int64] | None = None
    reputation: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", _frozen(self.beta, _FLOAT64))
        for name in ("U", "V"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _frozen(value, _FLOAT64))
        if self.class_counts is not None:
            object.__setattr__(self, "class_counts", _frozen(self.class_counts, _INT64))
        object.__setattr__(self, "weights", dict(self.weights))
        object.__setattr__(self, "reputation", dict(self.reputation))

    @property
    def has_statistics(self) -> bool:
        return self.U is not None and self.V is not None


@runtime_checkable
class Strategy(Protocol):
    """What every aggregation strategy provides.

    ``name`` is recorded in the ledger and announced with the round; ``kind`` says which update
    kind devices must send for it.
    """

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> UpdateKind: ...

    def aggregate(
        self, updates: Sequence[AcceptedUpdate], previous: GlobalState | None
    ) -> GlobalState | None:
        """The next global model, or ``None`` when there is no quorum (keep the last one)."""
        ...


def canonical_order(updates: Sequence[AcceptedUpdate]) -> list[AcceptedUpdate]:
    """Updates sorted by (node, hash): sums taken in this order are bit-for-bit independent of
    the order in which updates arrived, which makes permutation invariance exact."""
    return sorted(updates, key=lambda u: (u.node_id, u.update_hash))


def check_uniform(updates: Sequence[AcceptedUpdate], kind: UpdateKind) -> int:
    """The round all ``updates`` belong to; raises unless they share kind, round and shapes."""
    if not updates:
        raise AggregationError("no updates")
    rounds = {u.round for u in updates}
    if len(rounds) != 1:
        raise AggregationError(f"updates from several rounds: {sorted(rounds)}")
    shapes = set()
    for u in updates:
        if u.kind != kind:
            raise AggregationError(f"expected {kind} updates, node {u.node_id} sent {u.kind}")
        shapes.add(tuple((n, a.shape) for n, a in sorted(u.arrays.items())))
    if len(shapes) != 1:
        raise AggregationError(f"updates of different shapes: {sorted(shapes)}")
    return rounds.pop()
