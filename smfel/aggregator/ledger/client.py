"""Client-side checks of what a (possibly lying) log serves: the witness's view of the ledger.

A device or auditor trusts nothing the log says about itself. It keeps the last checkpoint it
accepted (signed by k of the n validators), and

* accepts a newer checkpoint only with a consistency proof from the old tree to the new one
  (RFC 9162 section 2.1.4.2), so a log that rewrites or forks its history is caught;
* accepts an entry as logged only with an inclusion proof that leads from the hash it computes
  itself over the entry's bytes to the root of a checkpoint it trusts (section 2.1.3.2).

Roots and leaf hashes inside a proof are never taken on trust: they are compared with the
checkpoint's and recomputed from the entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from smfel.agent.keys import Ed25519PublicKey
from smfel.aggregator.ledger.block import trusted_key_map
from smfel.aggregator.ledger.checkpoint import Checkpoint, verify_signed_checkpoint
from smfel.aggregator.ledger.entry import Entry
from smfel.aggregator.ledger.errors import LedgerInputError, ProofError
from smfel.aggregator.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from smfel.aggregator.ledger.proofs import ConsistencyProof, InclusionProof

__all__ = ["LogVerifier", "check_consistency", "check_inclusion"]


def _root(checkpoint: Checkpoint) -> bytes:
    return checkpoint.root


def check_inclusion(entry: Entry | bytes, proof: InclusionProof, checkpoint: Checkpoint) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``entry`` in the tree of ``checkpoint``."""
    data = entry.data if isinstance(entry, Entry) else entry
    leaf = leaf_hash(data)
    if proof.tree_size != checkpoint.tree_size:
        raise ProofError("inclusion", f"the proof is for a tree of {proof.tree_size} entries, "
                                      f"the checkpoint has {checkpoint.tree_size}")  # fmt: skip
    if proof.leaf_hash != leaf:
        raise ProofError("inclusion", "the proof is for a different entry")
    if proof.root != _root(checkpoint):
        raise ProofError("inclusion", "the proof names a root other than the checkpoint's")
    if not verify_inclusion(leaf, proof.leaf_index, proof.tree_size, proof.path, _root(checkpoint)):
        raise ProofError("inclusion", f"the path does not lead from entry {proof.leaf_index} "
                                      "to the checkpoint's root")  # fmt: skip


def check_consistency(old: Checkpoint, new: Checkpoint, proof: ConsistencyProof) -> None:
    """Raise :class:`ProofError` unless ``proof`` shows ``new``'s tree extends ``old``'s."""
    if (proof.first, proof.second) != (old.tree_size, new.tree_size):
        raise ProofError("consistency", f"the proof links sizes {proof.first} -> {proof.second}, "
                                        f"expected {old.tree_size} -> {new.tree_size}")  # fmt: skip
    if (proof.first_root, proof.second_root) != (_root(old), _root(new)):
        raise ProofError("consistency", "the proof names roots other than the checkpoints'")
    if not verify_consistency(old.tree_size, new.tree_size, _root(old), _root(new), proof.path):
        raise ProofError("consistency", f"the tree of {new.tree_size} entries does not extend "
                                        f"the trusted tree of {old.tree_size}")  # fmt: skip


class LogVerifier:
    """Follows a log through its signed checkpoints, trusting only what it can check.

    ``trusted_keys`` are the validators' public keys; ``k`` how many must sign a checkpoint.
    """

    def __init__(
        self,
        trusted_keys: Iterable[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey],
        k: int = 1,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        if k < 1:
            raise LedgerInputError("k", f"the signature threshold is at least 1, got {k}")
        self._trusted = trusted_key_map(trusted_keys)
        if len(self._trusted) < k:
            raise LedgerInputError(
                "k", f"{k} signatures required but {len(self._trusted)} keys trusted"
            )
        self._k = k
        self.checkpoint = checkpoint

    def accept(
        self, signed_checkpoint: Mapping[str, Any], proof: ConsistencyProof | None = None
    ) -> Checkpoint:
        """Verify a signed checkpoint and, if one is already trusted, the consistency proof from
        it to the new one; the new checkpoint becomes the trusted one. Raises ProofError."""
        return self.advance(
            verify_signed_checkpoint(signed_checkpoint, self._trusted, self._k), proof
        )

    def advance(self, new: Checkpoint, proof: ConsistencyProof | None = None) -> Checkpoint:
        """Move to ``new``, a checkpoint whose signature the caller has already checked (e.g. a
        ``smfel.checkpoint/1`` envelope from MQTT), if the log proves it extends the trusted one."""
        old = self.checkpoint
        if old is not None:
            if new.tree_size < old.tree_size or new.height < old.height:
                raise ProofError("consistency", f"the log went back from {old.tree_size} to "
                                                f"{new.tree_size} entries")  # fmt: skip
            if new.tree_size == old.tree_size and new.height == old.height:
                if new != old:
                    raise ProofError("consistency", "two different checkpoints of the same size")
            else:
                if proof is None:
                    raise ProofError("consistency", "a newer checkpoint needs a consistency proof")
                check_consistency(old, new, proof)
        self.checkpoint = new
        return new

    def check_inclusion(
        self, entry: Entry | bytes, proof: InclusionProof, checkpoint: Checkpoint | None = None
    ) -> None:
        """Check that ``entry`` is in the trusted checkpoint's tree (or the one given)."""
        target = checkpoint or self.checkpoint
        if target is None:
            raise ProofError("inclusion", "no trusted checkpoint yet")
        check_inclusion(entry, proof, target)
