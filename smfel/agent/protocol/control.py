"""Envelopes the aggregator signs: round announcement, global model, ledger checkpoint.

* ``smfel.round/1`` opens a round: which model bundle (``model_hash``) to train on, which
  strategy will aggregate, which ``kind`` of update it wants, the ``deadline`` and ``min_beats``.
* ``smfel.global/1`` closes one: the aggregated ``beta`` (and, for the exact strategy, the pooled
  statistics ``U``, ``V``, ``class_counts`` so devices continue learning from the pooled state),
  the total beat count, the contributing nodes and the ledger height that records the round.
* ``smfel.checkpoint/1`` is the ledger's signed head (height, head hash, RFC 9162 Merkle root
  and tree size), published retained so devices can act as witnesses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.agent.codec import arrays_digest
from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.agent.learner import SufficientStatistics
from smfel.agent.protocol import _fields as f
from smfel.agent.protocol._base import SignedEnvelope, signed, stamp
from smfel.agent.protocol.limits import Limits
from smfel.agent.protocol.reasons import Reason, Rejected
from smfel.agent.protocol.update import KINDS, UpdateKind, freeze_arrays

__all__ = ["GlobalModel", "LedgerCheckpoint", "RoundAnnouncement"]

_HASH_WHAT = "sha256:<64 hex>"


def _common(self: SignedEnvelope) -> None:
    f.check_pattern(self.nonce, f.NONCE, "32 hex digits", "nonce")
    f.check_pattern(self.key_id, f.KEY_ID, "ed25519:<32 hex>", "key_id")
    f.get_time({"timestamp": self.timestamp}, "timestamp")


@dataclass(frozen=True, slots=True, eq=False)
class RoundAnnouncement(SignedEnvelope):
    round: int
    model_hash: str
    strategy: str
    kind: UpdateKind
    deadline: str
    min_beats: int
    C: float
    class_weight: tuple[float, ...]
    timestamp: str
    nonce: str
    key_id: str
    signature: str

    SCHEMA: ClassVar[str] = "smfel.round/1"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"schema", "round", "model_hash", "strategy", "kind", "deadline", "min_beats", "C"}
        | {"class_weight", "timestamp", "nonce", "key_id", "signature"}
    )

    def __post_init__(self) -> None:
        f.get_int({"round": self.round}, "round")
        f.get_int({"min_beats": self.min_beats}, "min_beats")
        object.__setattr__(self, "class_weight", tuple(self.class_weight))
        f.get_positive_floats({"C": [self.C]}, "C", 1)
        f.get_positive_floats({"class_weight": list(self.class_weight)}, "class_weight", 64)
        f.check_pattern(self.model_hash, f.HASH, _HASH_WHAT, "model_hash")
        f.check_pattern(self.strategy, f.TOKEN, "a lower-case name", "strategy")
        if self.kind not in KINDS:
            raise f.fail(f"kind must be one of {KINDS}, got {self.kind!r}")
        f.get_time({"deadline": self.deadline}, "deadline")
        _common(self)

    @classmethod
    def create(
        cls,
        key: Ed25519PrivateKey,
        *,
        round: int,
        model_hash: str,
        strategy: str,
        kind: UpdateKind,
        deadline: dt.datetime,
        C: float,
        class_weight: Sequence[float],
        min_beats: int = 50,
        now: dt.datetime | None = None,
        nonce: str | None = None,
    ) -> RoundAnnouncement:
        """Sign an announcement. ``C`` and ``class_weight`` are the ridge parameter and class
        weights every device must learn with (the exact strategy relies on it)."""
        timestamp, nonce = stamp(now, nonce)
        fields: dict[str, Any] = dict(
            round=round,
            model_hash=model_hash,
            strategy=strategy,
            kind=kind,
            deadline=f.format_time(deadline),
            min_beats=min_beats,
            C=float(C),
            class_weight=tuple(float(w) for w in class_weight),
            timestamp=timestamp,
            nonce=nonce,
            key_id=key_id(key),
        )
        return signed(cls, key, fields)

    @property
    def deadline_time(self) -> dt.datetime:
        return f.parse_time(self.deadline)

    def body(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "round": self.round,
            "model_hash": self.model_hash,
            "strategy": self.strategy,
            "kind": self.kind,
            "deadline": self.deadline,
            "min_beats": self.min_beats,
            "C": self.C,
            "class_weight": list(self.class_weight),
            "timestamp": self.timestamp,
            "nonce": self.nonce,
            "key_id": self.key_id,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any], limits: Limits) -> RoundAnnouncement:
        kind = obj["kind"]
        if kind not in KINDS:
            raise f.fail(f"kind must be one of {KINDS}, got {kind!r:.40}")
        return cls(
            round=f.get_int(obj, "round"),
            model_hash=f.get_str(obj, "model_hash", f.HASH, _HASH_WHAT),
            strategy=f.get_str(obj, "strategy", f.TOKEN, "a lower-case name"),
            kind=cast(UpdateKind, kind),
            deadline=f.get_time(obj, "deadline"),
            min_beats=f.get_int(obj, "min_beats"),
            C=f.get_positive_floats({"C": [obj["C"]]}, "C", 1)[0],
            class_weight=f.get_positive_floats(obj, "class_weight", 64),
            timestamp=f.get_time(obj, "timestamp"),
            nonce=f.get_str(obj, "nonce", f.NONCE, "32 hex digits"),
            key_id=f.get_str(obj, "key_id", f.KEY_ID, "ed25519:<32 hex>"),
            signature=f.get_signature(obj),
        )


def check_global_arrays(arrays: Mapping[str, NDArray[Any]]) -> None:
    names = set(arrays)
    allowed = [{"beta"}, {"beta", "U", "V"}, {"beta", "U", "V", "class_counts"}]
    if names not in allowed:
        raise Rejected(
            Reason.BAD_SHAPE,
            f"a global model carries beta, optionally with U, V (and class_counts); got "
            f"{sorted(names)}",
        )
    f.require_float_matrix(arrays, "beta", 2)
    L, K = arrays["beta"].shape
    if "U" in arrays:
        f.require_float_matrix(arrays, "U", 2)
        f.require_float_matrix(arrays, "V", 2)
        if arrays["U"].shape != (L, L) or arrays["V"].shape != (L, K):
            raise Rejected(Reason.BAD_SHAPE, "U and V must be (L, L) and (L, K) for beta (L, K)")
    if "class_counts" in arrays:
        f.require_int_vector(arrays, "class_counts")
        if arrays["class_counts"].shape != (K,):
            raise Rejected(Reason.BAD_SHAPE, "class_counts must have one entry per class")


@dataclass(frozen=True, slots=True, eq=False)
class GlobalModel(SignedEnvelope):
    round: int
    model_hash: str
    strategy: str
    n_samples: int
    contributors: tuple[str, ...]
    ledger_height: int
    arrays: Mapping[str, NDArray[Any]]
    weights_hash: str
    timestamp: str
    nonce: str
    key_id: str
    signature: str

    SCHEMA: ClassVar[str] = "smfel.global/1"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"schema", "round", "model_hash", "strategy", "n_samples", "contributors"}
        | {"ledger_height", "arrays", "weights_hash", "timestamp", "nonce", "key_id", "signature"}
    )

    def __post_init__(self) -> None:
        for name in ("round", "n_samples", "ledger_height"):
            f.get_int({name: getattr(self, name)}, name)
        f.check_pattern(self.model_hash, f.HASH, _HASH_WHAT, "model_hash")
        f.check_pattern(self.weights_hash, f.HASH, _HASH_WHAT, "weights_hash")
        f.check_pattern(self.strategy, f.TOKEN, "a lower-case name", "strategy")
        object.__setattr__(self, "contributors", tuple(self.contributors))
        f.get_node_list({"contributors": list(self.contributors)}, "contributors", 10**9)
        _common(self)
        object.__setattr__(self, "arrays", freeze_arrays(self.arrays))
        check_global_arrays(self.arrays)

    @classmethod
    def create(
        cls,
        key: Ed25519PrivateKey,
        *,
        round: int,
        model_hash: str,
        strategy: str,
        arrays: Mapping[str, ArrayLike],
        n_samples: int,
        contributors: Sequence[str],
        ledger_height: int,
        now: dt.datetime | None = None,
        nonce: str | None = None,
    ) -> GlobalModel:
        timestamp, nonce = stamp(now, nonce)
        frozen = freeze_arrays(arrays)
        fields: dict[str, Any] = dict(
            round=round,
            model_hash=model_hash,
            strategy=strategy,
            n_samples=n_samples,
            contributors=tuple(sorted(set(contributors))),
            ledger_height=ledger_height,
            arrays=frozen,
            weights_hash=arrays_digest(frozen),
            timestamp=timestamp,
            nonce=nonce,
            key_id=key_id(key),
        )
        return signed(cls, key, fields)

    def body(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "round": self.round,
            "model_hash": self.model_hash,
            "strategy": self.strategy,
            "n_samples": self.n_samples,
            "contributors": list(self.contributors),
            "ledger_height": self.ledger_height,
            "arrays": f.arrays_to_wire(self.arrays),
            "weights_hash": self.weights_hash,
            "timestamp": self.timestamp,
            "nonce": self.nonce,
            "key_id": self.key_id,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any], limits: Limits) -> GlobalModel:
        return cls(
            round=f.get_int(obj, "round"),
            model_hash=f.get_str(obj, "model_hash", f.HASH, _HASH_WHAT),
            strategy=f.get_str(obj, "strategy", f.TOKEN, "a lower-case name"),
            n_samples=f.get_int(obj, "n_samples"),
            contributors=f.get_node_list(obj, "contributors", limits.max_contributors),
            ledger_height=f.get_int(obj, "ledger_height"),
            arrays=f.get_arrays(obj, limits),
            weights_hash=f.get_str(obj, "weights_hash", f.HASH, _HASH_WHAT),
            timestamp=f.get_time(obj, "timestamp"),
            nonce=f.get_str(obj, "nonce", f.NONCE, "32 hex digits"),
            key_id=f.get_str(obj, "key_id", f.KEY_ID, "ed25519:<32 hex>"),
            signature=f.get_signature(obj),
        )

    def array_payload(self) -> tuple[str, Mapping[str, NDArray[Any]]] | None:
        return self.weights_hash, self.arrays

    @property
    def beta(self) -> NDArray[np.float64]:
        return np.array(self.arrays["beta"], dtype=np.float64)

    def statistics(self) -> SufficientStatistics | None:
        """The pooled statistics when the strategy sent them (exact strategy), else ``None``."""
        if "U" not in self.arrays:
            return None
        K = self.arrays["V"].shape[1]
        counts = self.arrays.get("class_counts")
        return SufficientStatistics(
            np.array(self.arrays["U"], dtype=np.float64),
            np.array(self.arrays["V"], dtype=np.float64),
            self.n_samples,
            np.zeros(K, dtype=np.int64) if counts is None else np.array(counts, dtype=np.int64),
        )


@dataclass(frozen=True, slots=True, eq=False)
class LedgerCheckpoint(SignedEnvelope):
    height: int
    head_hash: str
    merkle_root: str
    tree_size: int
    timestamp: str
    nonce: str
    key_id: str
    signature: str

    SCHEMA: ClassVar[str] = "smfel.checkpoint/1"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"schema", "height", "head_hash", "merkle_root", "tree_size"}
        | {"timestamp", "nonce", "key_id", "signature"}
    )

    def __post_init__(self) -> None:
        f.get_int({"height": self.height}, "height")
        f.get_int({"tree_size": self.tree_size}, "tree_size")
        f.check_pattern(self.head_hash, f.HASH, _HASH_WHAT, "head_hash")
        f.check_pattern(self.merkle_root, f.HASH, _HASH_WHAT, "merkle_root")
        _common(self)

    @classmethod
    def create(
        cls,
        key: Ed25519PrivateKey,
        *,
        height: int,
        head_hash: str,
        merkle_root: str,
        tree_size: int,
        now: dt.datetime | None = None,
        nonce: str | None = None,
    ) -> LedgerCheckpoint:
        timestamp, nonce = stamp(now, nonce)
        fields: dict[str, Any] = dict(
            height=height,
            head_hash=head_hash,
            merkle_root=merkle_root,
            tree_size=tree_size,
            timestamp=timestamp,
            nonce=nonce,
            key_id=key_id(key),
        )
        return signed(cls, key, fields)

    def body(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "height": self.height,
            "head_hash": self.head_hash,
            "merkle_root": self.merkle_root,
            "tree_size": self.tree_size,
            "timestamp": self.timestamp,
            "nonce": self.nonce,
            "key_id": self.key_id,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any], limits: Limits) -> LedgerCheckpoint:
        return cls(
            height=f.get_int(obj, "height"),
            head_hash=f.get_str(obj, "head_hash", f.HASH, _HASH_WHAT),
            merkle_root=f.get_str(obj, "merkle_root", f.HASH, _HASH_WHAT),
            tree_size=f.get_int(obj, "tree_size"),
            timestamp=f.get_time(obj, "timestamp"),
            nonce=f.get_str(obj, "nonce", f.NONCE, "32 hex digits"),
            key_id=f.get_str(obj, "key_id", f.KEY_ID, "ed25519:<32 hex>"),
            signature=f.get_signature(obj),
        )
