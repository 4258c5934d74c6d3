"""The one verification pipeline every incoming update goes through.

Each check is explicit and a failure raises :class:`Rejected` with the protocol's typed
:class:`~smfel.agent.protocol.Reason` (the list of DESIGN.md, "Wire protocol"), which the service
records in the ledger. Parsing, the canonical form, the weights hash, the signature, the
timestamp window and finiteness are the protocol's strict parser
(:func:`smfel.agent.protocol.parse_update`); the registry, round, nonce, duplicate and
statistics checks are the aggregator's. Cheap checks come
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

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent.errors import SmfelError
from smfel.agent.protocol import Limits as WireLimits
from smfel.agent.protocol import NonceCache, Reason, Update, load_json, parse_update
from smfel.agent.protocol import Rejected as WireRejected
from smfel.aggregator.registry import KeyRecord, Registry
from smfel.aggregator.strategies import AcceptedUpdate, UpdateKind

__all__ = ["Limits", "Reason", "Rejected", "Verifier", "VerifierBatch"]

_KEY_ID = re.compile(rb"ed25519:[0-9a-f]{32}")
_NODE_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def _field(payload: bytes, marker: bytes, pattern: re.Pattern[bytes]) -> str | None:
    """The string value after the last ``marker`` when it has ``pattern``'s form. Searched
    from the end: in the canonical form ``key_id`` and ``node_id`` follow the long base64
    of ``arrays``, so the search reads a few hundred bytes instead of the whole payload (a
    forward search cost more than the rest of the pipeline's own checks)."""
    i = payload.rfind(marker)
    if i < 0:
        return None
    start = i + len(marker)
    end = payload.find(b'"', start, start + 80)
    if end < 0 or not pattern.fullmatch(payload, start, end):
        return None
    return payload[start:end].decode("ascii")


class Rejected(SmfelError):
    """An update failed verification: the protocol's reason plus what the ledger records
    (``node_id`` and ``update_hash`` when they were readable)."""

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


@dataclass(frozen=True, slots=True)
class Limits:
    """What the current model and policy allow."""

    n_hidden: int
    classes: tuple[str, ...]
    class_weight: tuple[float, ...]
    activation: str = "sigmoid"
    model_hash: str | None = None
    min_beats: int = 50
    max_payload: int = 4 * 1024 * 1024
    max_clock_skew: float = 300.0
    max_age: float = 3600.0

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def wire(self) -> WireLimits:
        return WireLimits(
            max_payload_bytes=self.max_payload,
            max_age=dt.timedelta(seconds=self.max_age),
            max_skew=dt.timedelta(seconds=self.max_clock_skew),
            min_beats=self.min_beats,
        )


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
        self._wire = limits.wire()
        self._nonces = NonceCache(dt.timedelta(seconds=limits.max_age + 2 * limits.max_clock_skew))

    def verify(
        self, payload: bytes, *, round: int, already: Collection[str] = ()
    ) -> AcceptedUpdate:
        """The verified update for ``round``; ``already`` holds nodes accepted this round."""
        return self._verify(payload, round, already, self.registry.snapshot(), self._now())

    def batch(self) -> VerifierBatch:
        """A verifier for updates taken off the queue together: one registry snapshot and one
        clock reading serve them all (see :class:`VerifierBatch`)."""
        return VerifierBatch(self, self.registry.snapshot(), self._now())

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def _verify(
        self,
        payload: bytes,
        round: int,
        already: Collection[str],
        keys: Mapping[str, KeyRecord],
        now: dt.datetime,
    ) -> AcceptedUpdate:
        lim = self.limits
        if len(payload) > lim.max_payload:
            raise Rejected(Reason.OVERSIZE, f"{len(payload)} bytes > limit {lim.max_payload}")
        # Find the signer's key without a second JSON parse. The match only chooses which
        # registered key the strict parser verifies with; the parser then checks that the
        # envelope's key_id is exactly that key's id, so a misleading match cannot pass.
        kid, node = (
            _field(payload, b'"key_id":"', _KEY_ID),
            _field(payload, b'"node_id":"', _NODE_ID),
        )
        if kid is None:
            # Not in canonical form: parse it to give the precise reason.
            try:
                obj = load_json(payload, self._wire)
            except WireRejected as err:
                raise Rejected(err.reason, err.detail) from err
            kid = obj.get("key_id") if isinstance(obj.get("key_id"), str) else None
            node = obj.get("node_id") if isinstance(obj.get("node_id"), str) else None
        record = keys.get(kid) if kid is not None else None
        if record is None:
            raise Rejected(Reason.UNKNOWN_KEY, f"key {kid!r:.80} is not registered", node_id=node)
        if node is not None and record.node_id != node:
            raise Rejected(
                Reason.UNKNOWN_KEY, f"key {kid} is enrolled for another node", node_id=node
            )
        if not record.usable:
            raise Rejected(Reason.REVOKED_KEY, f"key {kid} is {record.status}", node_id=node)
        try:
            upd = parse_update(
                payload,
                limits=self._wire,
                now=now,
                public_key=self.registry.public_key(record),
                n_hidden=lim.n_hidden,
                n_classes=lim.n_classes,
            )
        except WireRejected as err:
            raise Rejected(err.reason, err.detail, node_id=err.node_id or node) from err
        if upd.node_id != record.node_id:  # the scan above read the canonical form; recheck
            raise Rejected(
                Reason.UNKNOWN_KEY,
                f"key {kid} is enrolled for another node",
                node_id=upd.node_id,
            )
        # The parser only accepts the canonical encoding, so the payload is the envelope's
        # wire form and its SHA-256 is the envelope id (no re-encoding needed).
        uh = "sha256:" + hashlib.sha256(payload).hexdigest()

        def reject(reason: Reason, detail: str) -> Rejected:
            return Rejected(reason, detail, node_id=upd.node_id, update_hash=uh)

        try:
            self._nonces.check_and_add(upd.key_id, upd.nonce, now)
        except WireRejected as err:
            raise reject(err.reason, err.detail) from err
        if upd.round != round:
            raise reject(Reason.WRONG_ROUND, f"update is for round {upd.round}, open is {round}")
        if lim.model_hash is not None and upd.model_hash != lim.model_hash:
            raise reject(Reason.WRONG_ROUND, f"update is for model {upd.model_hash}")
        if upd.node_id in already:
            raise reject(Reason.DUPLICATE, f"node {upd.node_id} already sent round {round}")
        if upd.kind != self.kind:
            raise reject(Reason.BAD_SHAPE, f"this round takes {self.kind} updates, not {upd.kind}")
        if upd.kind == "stats":
            self._check_statistics(upd, reject)
        # ``AcceptedUpdate`` keeps the arrays its kind needs (a ``beta`` update's optional
        # ``class_counts`` is dropped), as the parser's read-only views of the decoded bytes.
        return AcceptedUpdate(
            node_id=upd.node_id,
            round=round,
            kind=upd.kind,
            n_samples=upd.n_samples,
            update_hash=uh,
            arrays=upd.arrays,
        )

    def _check_statistics(self, upd: Update, reject: Callable[[Reason, str], Rejected]) -> None:
        """Bounds with the class weights: ``trace(U) <= L * sum_k w_k n_k``, PSD ``U``,
        class counts adding up to ``n``, ``|V[:, k]| <= w_k n_k`` (``V >= 0`` for sigmoid)."""
        lim = self.limits
        U = np.asarray(upd.arrays["U"], dtype=np.float64)
        V = np.asarray(upd.arrays["V"], dtype=np.float64)
        counts: NDArray[Any] = np.asarray(upd.arrays["class_counts"], dtype=np.int64)
        n = upd.n_samples
        w = np.asarray(lim.class_weight, dtype=np.float64)
        values = counts.tolist()  # Python integers: an int64 sum can wrap around to n
        if min(values, default=0) < 0 or sum(values) != n:
            raise reject(Reason.OUT_OF_BOUNDS, f"class counts {values[:8]} do not add to {n}")
        scale = max(float(np.abs(U).max()), 1.0)
        tol = 1e-9 * scale * lim.n_hidden
        if np.abs(U - U.T).max() > tol:
            raise reject(Reason.OUT_OF_BOUNDS, "U is not symmetric")
        trace = float(np.trace(U))
        if trace > lim.n_hidden * float(w @ counts) * (1 + 1e-9) + tol:
            raise reject(Reason.OUT_OF_BOUNDS, f"trace(U) {trace:.4g} > L * weighted beats")
        try:
            # Cholesky of U + tiny * I succeeds iff U has no clearly negative eigenvalue, at a
            # fraction of the cost of an eigendecomposition.
            np.linalg.cholesky(U + np.eye(lim.n_hidden) * (tol + 1e-9 * max(trace, 1.0)))
        except np.linalg.LinAlgError:
            raise reject(Reason.OUT_OF_BOUNDS, "U is not positive semi-definite") from None
        cap = w * counts * (1 + 1e-9) + 1e-9
        if (np.abs(V) > cap[None, :]).any():
            raise reject(Reason.OUT_OF_BOUNDS, "V exceeds what the class counts allow")
        if lim.activation == "sigmoid" and (V < -1e-9).any():
            raise reject(Reason.OUT_OF_BOUNDS, "V has negative entries (sigmoid features are > 0)")


class VerifierBatch:
    """Verifies the updates of one batch with the registry and the clock read once.

    Every check runs per update as in :meth:`Verifier.verify`, in the same order and with the
    same reasons; only the registry snapshot (the ``PRAGMA data_version`` read and the lock)
    and the current time are shared. A key revoked while a batch is verified is refused from
    the next batch on, a few milliseconds later; the updates of the batch had arrived before
    the revocation was read. Not thread-safe: one worker uses one batch, then drops it.
    """

    def __init__(self, verifier: Verifier, keys: Mapping[str, KeyRecord], now: dt.datetime) -> None:
        self.verifier = verifier
        self.keys = keys
        self.now = now

    def verify(
        self, payload: bytes, *, round: int, already: Collection[str] = ()
    ) -> AcceptedUpdate:
        """As :meth:`Verifier.verify`, against the batch's snapshot and time."""
        return self.verifier._verify(payload, round, already, self.keys, self.now)
