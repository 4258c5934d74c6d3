"""Checkpoints of the ledger and their signed form, published on ``smfel/v1/ledger/checkpoint``.

A checkpoint names the head of the chain (height and block hash) and the log-wide Merkle tree
(size and RFC 9162 root). Its signed form is the canonical JSON of those fields plus a timestamp,
with Ed25519 signatures by k of the n validators over the canonical JSON of every other field.
Devices and auditors keep the last checkpoint they accepted and ask the log for a consistency
proof to the next one: that is what makes a rewritten history visible (RFC 9162 section 2.1.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from smfel.agent.codec import canonical_json
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey
from smfel.aggregator.ledger.block import (
    Signature,
    count_valid_signatures,
    sign_payload,
    trusted_key_map,
)
from smfel.aggregator.ledger.errors import LedgerInputError, ProofError
from smfel.aggregator.ledger.merkle import hash_from_text

__all__ = ["CHECKPOINT_SCHEMA", "Checkpoint", "sign_checkpoint", "verify_signed_checkpoint"]

CHECKPOINT_SCHEMA = "smfel.ledger.checkpoint/1"


class Checkpoint(NamedTuple):
    """``(height, head_hash, tree_size, merkle_root)``; hashes are ``sha256:<64 hex>``.

    An empty ledger has height -1, the genesis hash, size 0 and the root of the empty tree. The
    fields match the ``smfel.checkpoint/1`` envelope of :mod:`smfel.agent.protocol`, which is how
    the aggregator publishes a checkpoint on MQTT.
    """

    height: int
    head_hash: str
    tree_size: int
    merkle_root: str

    def to_json(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "head_hash": self.head_hash,
            "tree_size": self.tree_size,
            "merkle_root": self.merkle_root,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Checkpoint:
        try:
            height, head, size, root = (obj["height"], obj["head_hash"], obj["tree_size"],
                                        obj["merkle_root"])  # fmt: skip
        except (KeyError, TypeError) as err:
            raise LedgerInputError(
                "checkpoint", "expected an object with height, head_hash, tree_size, merkle_root"
            ) from err
        for name, value in (("height", height), ("tree_size", size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise LedgerInputError(name, f"expected an integer, got {value!r}")
        for name, value in (("head_hash", head), ("merkle_root", root)):
            try:
                hash_from_text(value)
            except ValueError as err:
                raise LedgerInputError(name, str(err)) from err
        if height < -1 or size < 0:
            raise LedgerInputError("checkpoint", f"height {height} or size {size} out of range")
        return cls(height, head, size, root)

    @property
    def root(self) -> bytes:
        """The Merkle root as 32 bytes."""
        return hash_from_text(self.merkle_root)


def _payload(doc: Mapping[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in doc.items() if k != "signatures"})


def sign_checkpoint(
    checkpoint: Checkpoint, keys: Iterable[Ed25519PrivateKey], timestamp: str
) -> dict[str, Any]:
    """The signed checkpoint document (a JSON object ready for ``canonical_json``)."""
    doc: dict[str, Any] = {
        "schema": CHECKPOINT_SCHEMA,
        **checkpoint.to_json(),
        "timestamp": timestamp,
    }
    sigs = sign_payload(_payload(doc), keys)
    if not sigs:
        raise LedgerInputError("signing_keys", "signing a checkpoint needs at least one key")
    doc["signatures"] = [s.to_json() for s in sigs]
    return doc


def verify_signed_checkpoint(
    doc: Mapping[str, Any],
    trusted_keys: Iterable[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey],
    k: int = 1,
) -> Checkpoint:
    """The checkpoint of ``doc`` if at least ``k`` distinct trusted validators signed it.

    Raises :class:`ProofError` (kind ``checkpoint``) otherwise.
    """
    if k < 1:
        raise LedgerInputError("k", f"the signature threshold is at least 1, got {k}")
    if not isinstance(doc, Mapping) or doc.get("schema") != CHECKPOINT_SCHEMA:
        raise ProofError("checkpoint", f"expected a {CHECKPOINT_SCHEMA} document")
    try:
        checkpoint = Checkpoint.from_json(doc)
        sigs = [Signature.from_json(s) for s in doc.get("signatures") or []]
        payload = _payload(doc)
    except (LedgerInputError, TypeError, ValueError) as err:
        raise ProofError("checkpoint", f"malformed: {err}") from err
    good = count_valid_signatures(payload, sigs, trusted_key_map(trusted_keys))
    if good < k:
        raise ProofError("checkpoint", f"{good} valid trusted signature(s), {k} required")
    return checkpoint
