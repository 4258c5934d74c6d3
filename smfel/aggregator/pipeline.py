"""The one verification pipeline every incoming update goes through.

Each check is explicit and a failure raises :class:`Rejected` with a typed :class:`Reason` (the
list of DESIGN.md, "Wire protocol"), which the service records in the ledger. Cheap checks come
first so that a flood of junk costs little: size, JSON shape, key, signature (Ed25519, RFC 8032,
about 72 us), then the arrays (hash, round, timestamp, nonce, duplicate, shape, finiteness, beat
count and the bounds that statistics from a real hidden layer must satisfy).

Bounds on ``stats`` updates (h = g(x W + b) with |h_i| < 1 for sigmoid and tanh, class weights
w_k): ``U`` is symmetric positive semi-definite with ``trace(U) <= L * sum_k w_k n_k``; the class
counts add up to ``n``; ``|V[:, k]| <= w_k n_k`` entry-wise (and ``V >= 0`` for sigmoid). An
update that breaks them was not computed from beats through this model.

Replay protection: a nonce is remembered per key for ``max_age + max_clock_skew`` seconds; an
update older than ``max_age`` is refused as stale, so nothing older can be replayed either.
"""

from __future__ import annotations

import enum
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent.codec import array_from_wire, arrays_digest, canonical_json
from smfel.agent.errors import SmfelError
from smfel.agent.keys import verify_bytes
from smfel.aggregator.registry import Registry
from smfel.aggregator.strategies import AcceptedUpdate, UpdateKind

__all__ = ["UPDATE_SCHEMA", "Limits", "Reason", "Rejected", "Verifier", "update_hash"]

UPDATE_SCHEMA = "smfel.update/1"
_FIELDS = frozenset(
    {
        "schema",
        "node_id",
        "round",
        "kind",
        "n_samples",
        "local_accuracy",
        "timestamp",
        "nonce",
        "arrays",
        "weights_hash",
        "key_id",
        "signature",
    }
)
_ARRAYS: Mapping[str, tuple[str, ...]] = {"stats": ("U", "V", "class_counts"), "beta": ("beta",)}


class Reason(enum.StrEnum):
    """Why an update was refused; the value is what the ledger records."""

    MALFORMED = "malformed"
    BAD_SCHEMA = "bad_schema"
    OVERSIZE = "oversize"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"
    HASH_MISMATCH = "hash_mismatch"
    WRONG_ROUND = "wrong_round"
    DUPLICATE = "duplicate"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    REPLAYED_NONCE = "replayed_nonce"
    BAD_SHAPE = "bad_shape"
    NOT_FINITE = "not_finite"
    OUT_OF_BOUNDS = "out_of_bounds"
    TOO_FEW_BEATS = "too_few_beats"


class Rejected(SmfelError):
    """An update failed verification. ``node_id`` and ``update_hash`` are known when parsed."""

    def __init__(
        self,
        reason: Reason,
        detail: str,
        *,
        node_id: str | None = None,
        update_hash: str | None = None,
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.node_id = node_id
        self.update_hash = update_hash


def update_hash(envelope: Mapping[str, Any]) -> str:
    """``sha256:`` over the canonical JSON of the whole signed envelope (the ledger's id)."""
    return "sha256:" + hashlib.sha256(canonical_json(dict(envelope))).hexdigest()


@dataclass(frozen=True, slots=True)
class Limits:
    """What the current model and policy allow."""

    n_hidden: int
    classes: tuple[str, ...]
    class_weight: tuple[float, ...]
    activation: str = "sigmoid"
    min_beats: int = 50
    max_payload: int = 4 * 1024 * 1024
    max_clock_skew: float = 300.0
    max_age: float = 3600.0

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def _parse_time(text: object) -> float:
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError("timestamp must be RFC 3339 UTC text ending in Z")
    return datetime.fromisoformat(text[:-1] + "+00:00").astimezone(UTC).timestamp()


class _NonceCache:
    """Nonces seen per key, forgotten after ``ttl`` seconds (insertion-ordered, so pruning is
    amortised O(1))."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def check_and_add(self, kid: str, nonce: str, now: float) -> bool:
        while self._seen:
            (k, t) = next(iter(self._seen.items()))
            if now - t <= self.ttl:
                break
            del self._seen[k]
        key = (kid, nonce)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


class Verifier:
    """Runs the pipeline. Thread-safe; the nonce memory is the only state it keeps."""

    def __init__(
        self,
        registry: Registry,
        limits: Limits,
        kind: UpdateKind,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.limits = limits
        self.kind = kind
        self.clock = clock
        self._nonces = _NonceCache(limits.max_age + 2 * limits.max_clock_skew)
        self._lock = threading.Lock()

    # -- the pipeline ----------------------------------------------------------------------------
    def verify(
        self, payload: bytes, *, round: int, already: Collection[str] = ()
    ) -> AcceptedUpdate:
        """The verified update for ``round``; ``already`` holds nodes accepted this round."""
        lim = self.limits
        if len(payload) > lim.max_payload:
            raise Rejected(Reason.OVERSIZE, f"{len(payload)} bytes > limit {lim.max_payload}")
        env = self._parse(payload)
        node = env["node_id"]
        uh = update_hash(env)

        def reject(reason: Reason, detail: str) -> Rejected:
            return Rejected(reason, detail, node_id=node, update_hash=uh)

        record = self.registry.lookup(env["key_id"])
        if record is None:
            raise reject(Reason.UNKNOWN_KEY, f"key {env['key_id']} is not registered")
        if record.node_id != node:
            raise reject(Reason.UNKNOWN_KEY, f"key {env['key_id']} belongs to another node")
        if not record.usable:
            raise reject(Reason.REVOKED_KEY, f"key {env['key_id']} is {record.status}")
        body = {k: v for k, v in env.items() if k != "signature"}
        if not verify_bytes(
            self.registry.public_key(record), canonical_json(body), env["signature"]
        ):
            raise reject(Reason.BAD_SIGNATURE, "Ed25519 signature does not verify")
        arrays = self._arrays(env, reject)
        if arrays_digest(arrays) != env["weights_hash"]:
            raise reject(Reason.HASH_MISMATCH, "weights_hash does not match the arrays")
        now = self.clock()
        try:
            ts = _parse_time(env["timestamp"])
        except ValueError as err:
            raise reject(Reason.MALFORMED, str(err)) from err
        if ts > now + lim.max_clock_skew:
            raise reject(Reason.FUTURE_TIMESTAMP, f"timestamp {env['timestamp']} is in the future")
        if ts < now - lim.max_age:
            raise reject(
                Reason.STALE_TIMESTAMP, f"timestamp {env['timestamp']} is older than {lim.max_age}s"
            )
        with self._lock:
            fresh = self._nonces.check_and_add(env["key_id"], env["nonce"], now)
        if not fresh:
            raise reject(Reason.REPLAYED_NONCE, f"nonce {env['nonce']} was seen before")
        if env["round"] != round:
            raise reject(Reason.WRONG_ROUND, f"update is for round {env['round']}, open is {round}")
        if node in already:
            raise reject(Reason.DUPLICATE, f"node {node} already contributed to round {round}")
        self._check_values(env, arrays, reject)
        return AcceptedUpdate(
            node_id=node,
            round=round,
            kind=env["kind"],
            n_samples=env["n_samples"],
            update_hash=uh,
            arrays=arrays,
        )

    # -- steps -----------------------------------------------------------------------------------
    def _parse(self, payload: bytes) -> dict[str, Any]:
        try:
            env = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise Rejected(Reason.MALFORMED, f"not JSON: {err}") from err
        if not isinstance(env, dict):
            raise Rejected(Reason.MALFORMED, "an update must be a JSON object")
        node = env.get("node_id") if isinstance(env.get("node_id"), str) else None
        missing, extra = sorted(_FIELDS - env.keys()), sorted(env.keys() - _FIELDS)
        if missing or extra:
            raise Rejected(
                Reason.BAD_SCHEMA, f"fields missing {missing}, unexpected {extra}", node_id=node
            )
        if env["schema"] != UPDATE_SCHEMA:
            raise Rejected(Reason.BAD_SCHEMA, f"schema must be {UPDATE_SCHEMA}", node_id=node)
        checks: dict[str, Callable[[Any], bool]] = {
            "node_id": lambda v: isinstance(v, str) and 0 < len(v) <= 64,
            "round": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "kind": lambda v: v in _ARRAYS,
            "n_samples": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            "local_accuracy": lambda v: v is None or isinstance(v, int | float),
            "timestamp": lambda v: isinstance(v, str),
            "nonce": lambda v: isinstance(v, str) and 8 <= len(v) <= 128,
            "arrays": lambda v: isinstance(v, dict) and len(v) <= 8,
            "weights_hash": lambda v: isinstance(v, str) and v.startswith("sha256:"),
            "key_id": lambda v: isinstance(v, str) and v.startswith("ed25519:"),
            "signature": lambda v: isinstance(v, str) and len(v) <= 128,
        }
        for name, ok in checks.items():
            if not ok(env[name]):
                raise Rejected(Reason.MALFORMED, f"{name} has the wrong type or form", node_id=node)
        return env

    def _arrays(
        self, env: Mapping[str, Any], reject: Callable[[Reason, str], Rejected]
    ) -> dict[str, NDArray[Any]]:
        need = _ARRAYS[env["kind"]]
        if env["kind"] != self.kind:
            raise reject(Reason.BAD_SHAPE, f"this round takes {self.kind} updates")
        if sorted(env["arrays"]) != sorted(need):
            raise reject(Reason.BAD_SHAPE, f"{env['kind']} needs arrays {list(need)}")
        out = {}
        for name in need:
            spec = env["arrays"][name]
            if not isinstance(spec, dict):
                raise reject(Reason.MALFORMED, f"array {name} must be an object")
            try:
                out[name] = array_from_wire(spec)
            except ValueError as err:
                raise reject(Reason.MALFORMED, f"array {name}: {err}") from err
        return out

    def _check_values(
        self,
        env: Mapping[str, Any],
        arrays: Mapping[str, NDArray[Any]],
        reject: Callable[[Reason, str], Rejected],
    ) -> None:
        lim = self.limits
        L, K = lim.n_hidden, lim.n_classes
        shapes = {"U": (L, L), "V": (L, K), "class_counts": (K,), "beta": (L, K)}
        for name, a in arrays.items():
            if a.shape != shapes[name]:
                raise reject(
                    Reason.BAD_SHAPE, f"{name} has shape {a.shape}, expected {shapes[name]}"
                )
            if name == "class_counts":
                if a.dtype.kind != "i":
                    raise reject(Reason.BAD_SHAPE, "class_counts must be integers")
            elif a.dtype.kind != "f":
                raise reject(Reason.BAD_SHAPE, f"{name} must be floating point")
            if not np.isfinite(a).all():
                raise reject(Reason.NOT_FINITE, f"{name} holds NaN or infinity")
        n = int(env["n_samples"])
        if n < lim.min_beats:
            raise reject(Reason.TOO_FEW_BEATS, f"{n} beats < minimum {lim.min_beats}")
        if env["kind"] == "stats":
            self._check_statistics(arrays, n, reject)

    def _check_statistics(
        self,
        arrays: Mapping[str, NDArray[Any]],
        n: int,
        reject: Callable[[Reason, str], Rejected],
    ) -> None:
        lim = self.limits
        U = arrays["U"].astype(np.float64)
        V = arrays["V"].astype(np.float64)
        counts = arrays["class_counts"].astype(np.int64)
        w = np.asarray(lim.class_weight, dtype=np.float64)
        if (counts < 0).any() or int(counts.sum()) != n:
            raise reject(Reason.OUT_OF_BOUNDS, f"class counts {counts.tolist()} do not add to {n}")
        weighted = float(w @ counts)
        scale = max(float(np.abs(U).max()), 1.0)
        tol = 1e-9 * scale * lim.n_hidden
        if np.abs(U - U.T).max() > tol:
            raise reject(Reason.OUT_OF_BOUNDS, "U is not symmetric")
        trace = float(np.trace(U))
        if trace > lim.n_hidden * weighted * (1 + 1e-9) + tol:
            raise reject(Reason.OUT_OF_BOUNDS, f"trace(U) {trace:.4g} > L * weighted beats")
        try:
            np.linalg.cholesky(U + np.eye(lim.n_hidden) * (tol + 1e-9 * max(trace, 1.0)))
        except np.linalg.LinAlgError:
            raise reject(Reason.OUT_OF_BOUNDS, "U is not positive semi-definite") from None
        cap = w * counts * (1 + 1e-9) + 1e-9
        if (np.abs(V) > cap[None, :]).any():
            raise reject(Reason.OUT_OF_BOUNDS, "V exceeds what the class counts allow")
        if lim.activation == "sigmoid" and (V < -1e-9).any():
            raise reject(Reason.OUT_OF_BOUNDS, "V has negative entries (sigmoid features are > 0)")
