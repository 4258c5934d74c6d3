"""The update envelope (``smfel.update/1``): one device's contribution to one round.

``kind == "stats"`` carries the round's sufficient statistics ``U`` (L, L), ``V`` (L, K) and
``class_counts`` (K,); ``kind == "beta"`` carries the local output weights ``beta`` (L, K) and,
optionally, ``class_counts``. ``n_samples`` is the number of beats the update was learned from.
"""

from __future__ import annotations

import builtins
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.agent.codec import arrays_digest
from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.agent.learner import SufficientStatistics
from smfel.agent.protocol import _fields as f
from smfel.agent.protocol._base import SignedEnvelope, signed, stamp
from smfel.agent.protocol.limits import Limits
from smfel.agent.protocol.reasons import Reason, Rejected

__all__ = ["KINDS", "Update", "UpdateKind"]

UpdateKind = Literal["stats", "beta"]
KINDS: tuple[UpdateKind, ...] = ("stats", "beta")
#: The readers' pattern tests, for the inline checks of ``Update.from_obj``.
_node_id = f.NODE_ID.fullmatch
_hash = f.HASH.fullmatch
_nonce = f.NONCE.fullmatch
_key_id = f.KEY_ID.fullmatch
#: Exactly the strings ``_fields.get_signature`` accepts: the canonical base64 of 64 bytes is
#: 21 groups of 4 characters for 63 bytes, then one character, then one whose low four bits
#: (unused) are zero, then ``==``.
_signature = re.compile(r"[A-Za-z0-9+/]{85}[AQgw]==").fullmatch
_ARRAYS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # kind -> (required arrays, optional arrays)
    "stats": (frozenset({"U", "V", "class_counts"}), frozenset()),
    "beta": (frozenset({"beta"}), frozenset({"class_counts"})),
}


def freeze_arrays(arrays: Mapping[str, ArrayLike]) -> Mapping[str, NDArray[Any]]:
    out: dict[str, NDArray[Any]] = {}
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.flags.writeable or not a.flags.c_contiguous or not a.dtype.isnative:
            a = f.freeze(a)
        out[name] = a
    return MappingProxyType(out)


def check_update_arrays(kind: str, arrays: Mapping[str, NDArray[Any]]) -> None:
    """The arrays a ``kind`` of update must carry, with consistent shapes (``bad_shape``)."""
    required, optional = _ARRAYS[kind]
    names = set(arrays)
    if not required <= names or not names <= required | optional:
        raise Rejected(
            Reason.BAD_SHAPE,
            f"a {kind!r} update carries arrays {sorted(required)}"
            + (f" (optionally {sorted(optional)})" if optional else "")
            + f", got {sorted(names)}",
        )
    if kind == "stats":
        f.require_float_matrix(arrays, "U", 2)
        f.require_float_matrix(arrays, "V", 2)
        f.require_int_vector(arrays, "class_counts")
        U, V, c = arrays["U"], arrays["V"], arrays["class_counts"]
        L, K = V.shape
        if U.shape != (L, L) or c.shape != (K,):
            raise Rejected(
                Reason.BAD_SHAPE,
                f"U {U.shape}, V {V.shape}, class_counts {c.shape} must be (L, L), (L, K), (K,)",
            )
    else:
        f.require_float_matrix(arrays, "beta", 2)
        if "class_counts" in arrays:
            f.require_int_vector(arrays, "class_counts")
            if arrays["class_counts"].shape != (arrays["beta"].shape[1],):
                raise Rejected(Reason.BAD_SHAPE, "class_counts must have one entry per class")


@dataclass(frozen=True, slots=True, eq=False)
class Update(SignedEnvelope):
    """A signed update. Build with :meth:`create`; read with ``parse_update``."""

    node_id: str
    round: int
    kind: UpdateKind
    model_hash: str
    n_samples: int
    local_accuracy: float | None
    arrays: Mapping[str, NDArray[Any]]
    weights_hash: str
    timestamp: str
    nonce: str
    key_id: str
    signature: str

    SCHEMA: ClassVar[str] = "smfel.update/1"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "schema",
            "node_id",
            "round",
            "kind",
            "model_hash",
            "n_samples",
            "local_accuracy",
            "arrays",
            "weights_hash",
            "timestamp",
            "nonce",
            "key_id",
            "signature",
        }
    )

    def __post_init__(self) -> None:
        f.check_pattern(self.node_id, f.NODE_ID, "1-64 of [A-Za-z0-9._-]", "node_id")
        f.check_pattern(self.model_hash, f.HASH, "sha256:<64 hex>", "model_hash")
        f.check_pattern(self.weights_hash, f.HASH, "sha256:<64 hex>", "weights_hash")
        f.check_pattern(self.nonce, f.NONCE, "32 hex digits", "nonce")
        f.check_pattern(self.key_id, f.KEY_ID, "ed25519:<32 hex>", "key_id")
        if self.kind not in KINDS:
            raise f.fail(f"kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("round", "n_samples"):
            f.get_int({name: getattr(self, name)}, name)
        f.get_optional_float({"local_accuracy": self.local_accuracy}, "local_accuracy")
        f.get_time({"timestamp": self.timestamp}, "timestamp")
        object.__setattr__(self, "arrays", freeze_arrays(self.arrays))
        check_update_arrays(self.kind, self.arrays)

    @classmethod
    def create(
        cls,
        key: Ed25519PrivateKey,
        *,
        node_id: str,
        round: int,
        kind: UpdateKind,
        arrays: Mapping[str, ArrayLike],
        n_samples: int,
        local_accuracy: float | None,
        model_hash: str,
        now: dt.datetime | None = None,
        nonce: str | None = None,
    ) -> Update:
        """Sign a new update. ``local_accuracy`` (``None`` when unknown) is rounded to 4
        decimals, which keeps its decimal spelling the same in every JSON library."""
        timestamp, nonce = stamp(now, nonce)
        frozen = freeze_arrays(arrays)
        fields: dict[str, Any] = {
            "node_id": node_id,
            "round": round,
            "kind": kind,
            "model_hash": model_hash,
            "n_samples": n_samples,
            "local_accuracy": (
                None if local_accuracy is None else builtins.round(float(local_accuracy), 4)
            ),
            "arrays": frozen,
            "weights_hash": arrays_digest(frozen),
            "timestamp": timestamp,
            "nonce": nonce,
            "key_id": key_id(key),
        }
        return signed(cls, key, fields)

    @classmethod
    def from_statistics(
        cls,
        key: Ed25519PrivateKey,
        stats: SufficientStatistics,
        *,
        node_id: str,
        round: int,
        model_hash: str,
        local_accuracy: float | None,
        now: dt.datetime | None = None,
    ) -> Update:
        """A ``stats`` update from a learner's :class:`SufficientStatistics`."""
        return cls.create(
            key,
            node_id=node_id,
            round=round,
            kind="stats",
            arrays={
                "U": stats.U,
                "V": stats.V,
                "class_counts": np.asarray(stats.class_counts, dtype=np.int64),
            },
            n_samples=int(stats.n),
            local_accuracy=local_accuracy,
            model_hash=model_hash,
            now=now,
        )

    def body(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "node_id": self.node_id,
            "round": self.round,
            "kind": self.kind,
            "model_hash": self.model_hash,
            "n_samples": self.n_samples,
            "local_accuracy": self.local_accuracy,
            "arrays": f.arrays_to_wire(self.arrays),
            "weights_hash": self.weights_hash,
            "timestamp": self.timestamp,
            "nonce": self.nonce,
            "key_id": self.key_id,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any], limits: Limits) -> Update:
        kind = obj["kind"]
        if kind not in KINDS:
            raise f.fail(f"kind must be one of {KINDS}, got {kind!r:.40}")
        # The readers check every field in ``__post_init__``'s way, in the documented order;
        # then what ``__post_init__`` adds (the arrays a kind carries, a read-only mapping).
        # A field is first tested inline with the reader's own test (a receiver reads
        # thousands of updates a second: 10.2 us per update through the reader calls, 8.1 us
        # so); any value that does not pass goes to the reader, which refuses it with its
        # reason or, for a subclass of the expected type, takes it as before.
        node_id = obj["node_id"]
        if type(node_id) is not str or not _node_id(node_id):
            node_id = f.get_str(obj, "node_id", f.NODE_ID, "1-64 of [A-Za-z0-9._-]")
        rnd = obj["round"]
        if type(rnd) is not int or not 0 <= rnd <= f.MAX_INT:
            rnd = f.get_int(obj, "round")
        model_hash = obj["model_hash"]
        if type(model_hash) is not str or not _hash(model_hash):
            model_hash = f.get_str(obj, "model_hash", f.HASH, "sha256:<64 hex>")
        n_samples = obj["n_samples"]
        if type(n_samples) is not int or not 0 <= n_samples <= f.MAX_INT:
            n_samples = f.get_int(obj, "n_samples")
        accuracy = obj["local_accuracy"]
        if accuracy is not None and type(accuracy) is not float:
            accuracy = f.get_optional_float(obj, "local_accuracy")
        arrays = f.get_arrays(obj, limits)
        weights_hash = obj["weights_hash"]
        if type(weights_hash) is not str or not _hash(weights_hash):
            weights_hash = f.get_str(obj, "weights_hash", f.HASH, "sha256:<64 hex>")
        timestamp = f.get_time(obj, "timestamp")
        nonce = obj["nonce"]
        if type(nonce) is not str or not _nonce(nonce):
            nonce = f.get_str(obj, "nonce", f.NONCE, "32 hex digits")
        kid = obj["key_id"]
        if type(kid) is not str or not _key_id(kid):
            kid = f.get_str(obj, "key_id", f.KEY_ID, "ed25519:<32 hex>")
        signature = obj["signature"]
        if type(signature) is not str or not _signature(signature):
            signature = f.get_signature(obj)
        # ``get_arrays`` gives read-only, C-contiguous, native-order arrays: frozen already.
        check_update_arrays(kind, arrays)
        # The envelope without ``__init__``, whose ``__post_init__`` would run each of those
        # checks again.
        env = object.__new__(cls)
        put = object.__setattr__
        put(env, "node_id", node_id)
        put(env, "round", rnd)
        put(env, "kind", kind)
        put(env, "model_hash", model_hash)
        put(env, "n_samples", n_samples)
        put(env, "local_accuracy", accuracy)
        put(env, "arrays", MappingProxyType(arrays))
        put(env, "weights_hash", weights_hash)
        put(env, "timestamp", timestamp)
        put(env, "nonce", nonce)
        put(env, "key_id", kid)
        put(env, "signature", signature)
        return env

    def array_payload(self) -> tuple[str, Mapping[str, NDArray[Any]]] | None:
        return self.weights_hash, self.arrays

    def check_values(self, limits: Limits) -> None:
        """Values real data can produce: accuracy in [0, 1], at least ``min_beats`` beats."""
        if self.local_accuracy is not None and not 0.0 <= self.local_accuracy <= 1.0:
            raise Rejected(
                Reason.OUT_OF_BOUNDS, f"local_accuracy {self.local_accuracy} is not in [0, 1]"
            )
        if self.n_samples < limits.min_beats:
            raise Rejected(
                Reason.TOO_FEW_BEATS,
                f"{self.n_samples} beats, at least {limits.min_beats} are required",
            )
        counts = self.arrays.get("class_counts")
        # Python integers: an int64 sum wraps (four counts of 2^62 would sum to 0).
        values: list[int] = [] if counts is None else counts.tolist()
        if values and (min(values) < 0 or sum(values) > self.n_samples):
            raise Rejected(
                Reason.OUT_OF_BOUNDS,
                f"class_counts must be non-negative and sum to at most n_samples={self.n_samples}",
            )

    def check_dims(self, n_hidden: int, n_classes: int) -> None:
        """``bad_shape`` unless the arrays fit a model with L hidden units and K classes."""
        L, K = n_hidden, n_classes
        want = {"U": (L, L), "V": (L, K), "beta": (L, K), "class_counts": (K,)}
        for name, a in self.arrays.items():
            if a.shape != want[name]:
                raise Rejected(
                    Reason.BAD_SHAPE,
                    f"arrays.{name} has shape {a.shape}, the model needs {want[name]}",
                )

    def statistics(self) -> SufficientStatistics:
        """The carried statistics (``stats`` updates only), as float64 copies."""
        if self.kind != "stats":
            raise ValueError(f"a {self.kind!r} update carries no statistics")
        return SufficientStatistics(
            np.array(self.arrays["U"], dtype=np.float64),
            np.array(self.arrays["V"], dtype=np.float64),
            self.n_samples,
            np.array(self.arrays["class_counts"], dtype=np.int64),
        )

    @property
    def beta(self) -> NDArray[np.float64]:
        """The carried output weights (``beta`` updates only), as a float64 copy."""
        if self.kind != "beta":
            raise ValueError(f"a {self.kind!r} update carries no beta")
        return np.array(self.arrays["beta"], dtype=np.float64)
