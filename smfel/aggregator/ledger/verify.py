"""Verification of a whole ledger: one pass over blocks and entries, naming the first bad height.

For every height 0, 1, 2, ... in order the block must exist, its stored header must be canonical
JSON whose SHA-256 is the stored hash, it must name the previous block's hash, carry at least k
valid signatures by distinct trusted validators, and its entries (by position) must hash (RFC 9162
leaves) to the header's Merkle root; the log-wide tree after the block must have the size and root
the header states. After the last block no entry may be left over and the head row must name the
last block. An altered, dropped, reordered or inserted block or entry breaks one of these at the
first height it touches. The log tree is carried as a :class:`Frontier`, so the pass is linear in
the number of entries and needs O(log n) memory beyond one block.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from smfel.agent.keys import Ed25519PublicKey
from smfel.aggregator.ledger.block import (
    GENESIS_HASH,
    BlockHeader,
    Signature,
    count_valid_signatures,
)
from smfel.aggregator.ledger.checkpoint import Checkpoint
from smfel.aggregator.ledger.errors import LedgerInputError
from smfel.aggregator.ledger.merkle import EMPTY_ROOT, Frontier, hash_text, root_hash
from smfel.aggregator.ledger.storage import BlockRow, EntryRow, Reader

__all__ = ["VerifyReport", "verify_chain"]

_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of :func:`verify_chain`. ``verified`` is the checkpoint of the last good block."""

    ok: bool
    first_bad_height: int | None
    reason: str | None
    blocks: int
    entries: int
    signatures_checked: bool
    verified: Checkpoint = field(
        default_factory=lambda: Checkpoint(-1, GENESIS_HASH, 0, hash_text(EMPTY_ROOT))
    )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "first_bad_height": self.first_bad_height,
            "reason": self.reason,
            "blocks": self.blocks,
            "entries": self.entries,
            "signatures_checked": self.signatures_checked,
            "verified": self.verified.to_json(),
        }


class _Bad(Exception):
    def __init__(self, height: int, reason: str) -> None:
        super().__init__(reason)
        self.height = height
        self.reason = reason


def _signatures(text: str) -> list[Signature]:
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise LedgerInputError("signatures", f"not valid JSON: {err}") from err
    if not isinstance(raw, list):
        raise LedgerInputError("signatures", "expected a JSON list")
    return [Signature.from_json(s) for s in raw]


def verify_chain(
    reader: Reader,
    trusted: Mapping[str, Ed25519PublicKey] | None,
    k: int = 1,
    witness: Checkpoint | None = None,
) -> VerifyReport:
    """Check the whole ledger read through ``reader``.

    ``trusted`` maps key ids to validator keys; ``None`` skips the signature check (structure
    and hashes only). ``witness`` is a checkpoint kept outside the database (e.g. the last one
    published); the ledger must contain it, which catches a truncated chain whose head row was
    rewound as well.
    """
    if k < 1:
        raise LedgerInputError("k", f"the signature threshold is at least 1, got {k}")
    if trusted is not None and k > len(trusted):
        raise LedgerInputError("k", f"{k} signatures required but only {len(trusted)} keys trusted")
    state = _Walk()
    try:
        state.run(reader, trusted, k, witness)
    except _Bad as bad:
        return state.report(bad.height, bad.reason, trusted is not None)
    return state.report(None, None, trusted is not None)


class _Walk:
    def __init__(self) -> None:
        self.frontier = Frontier()
        self.height = 0
        self.prev_hash = GENESIS_HASH
        self.verified = Checkpoint(-1, GENESIS_HASH, 0, hash_text(EMPTY_ROOT))

    def report(self, bad: int | None, reason: str | None, signed: bool) -> VerifyReport:
        return VerifyReport(
            ok=bad is None,
            first_bad_height=bad,
            reason=reason,
            blocks=self.height,
            entries=self.verified.tree_size,
            signatures_checked=signed,
            verified=self.verified,
        )

    def run(
        self,
        reader: Reader,
        trusted: Mapping[str, Ed25519PublicKey] | None,
        k: int,
        witness: Checkpoint | None,
    ) -> None:
        entries: Iterator[EntryRow] = iter(reader.scan_entries())
        blocks = iter(reader.blocks(-(2**62), None))
        try:
            self._walk(blocks, entries, trusted, k, witness)
        except (TypeError, ValueError, AttributeError) as err:
            # A column holding a value of the wrong type (SQLite does not enforce them).
            raise _Bad(self.height, f"a stored value has the wrong type: {err}") from err
        finally:
            # Server-side cursors must close inside the read transaction, not at garbage collection.
            for it in (blocks, entries):
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        try:
            self._check_head(reader, witness)
        except (TypeError, ValueError, AttributeError) as err:
            raise _Bad(max(self.height - 1, 0), f"the head row is malformed: {err}") from err

    def _walk(
        self,
        blocks: Iterator[BlockRow],
        entries: Iterator[EntryRow],
        trusted: Mapping[str, Ed25519PublicKey] | None,
        k: int,
        witness: Checkpoint | None,
    ) -> None:
        pending = next(entries, None)
        for row in blocks:
            h = self.height
            if row.height != h:
                raise _Bad(h, f"expected the block at height {h}, found height {row.height}")
            if not isinstance(row.header, str):
                raise _Bad(h, "the stored header is not text")
            try:
                header = BlockHeader.parse(row.header)
            except LedgerInputError as err:
                raise _Bad(h, f"malformed header: {err}") from err
            if header.height != h:
                raise _Bad(h, f"the header says height {header.height}")
            if header.prev_hash != self.prev_hash:
                raise _Bad(
                    h, f"previous hash {header.prev_hash[:16]}.. is not block {h - 1}'s hash"
                )
            payload = row.header.encode("utf-8")
            digest = "sha256:" + _sha256(payload).hexdigest()
            if row.hash != digest:
                raise _Bad(h, "the stored block hash is not the hash of the header")
            if trusted is not None:
                try:
                    sigs = _signatures(row.signatures)
                except LedgerInputError as err:
                    raise _Bad(h, f"malformed signatures: {err}") from err
                good = count_valid_signatures(payload, sigs, trusted)
                if good < k:
                    raise _Bad(h, f"{good} valid trusted signature(s), {k} required")

            n = header.entry_count
            # The header says how many entries follow: take them in one slice, then check the
            # whole block with list operations (this loop runs over millions of entries).
            rows = ([pending, *islice(entries, n - 1)] if pending is not None else []) if n else []
            pending = next(entries, None) if n else pending
            leaves = self._block_leaves(h, n, rows, pending)
            if hash_text(root_hash(leaves)) != header.merkle_root:
                raise _Bad(h, "the Merkle root of the block's entries does not match the header")
            self.frontier.extend(leaves)
            log_root = hash_text(self.frontier.root())
            if self.frontier.size != header.log_size or log_root != header.log_root:
                raise _Bad(h, "the log tree after this block does not match the header")
            if (
                witness is not None
                and witness.height == h
                and (
                    witness.head_hash != digest
                    or witness.tree_size != header.log_size
                    or witness.merkle_root != header.log_root
                )
            ):
                raise _Bad(h, "the block differs from the trusted checkpoint at this height")
            self.prev_hash = digest
            self.verified = Checkpoint(h, digest, header.log_size, header.log_root)
            self.height = h + 1

        if pending is not None:
            raise _Bad(pending[1], f"entry {pending[0]} is stored at height {pending[1]}, "
                                   "which has no block")  # fmt: skip

    def _block_leaves(
        self, h: int, n: int, rows: list[EntryRow], pending: EntryRow | None
    ) -> list[bytes]:
        """Check the rows taken for block ``h`` and return their recomputed leaf hashes."""
        for i, row in enumerate(rows):
            if row[1] != h:
                if row[1] < h:
                    raise _Bad(h, f"entry {row[0]} is out of place (stored at height {row[1]})")
                raise _Bad(h, f"{i} entries stored, the header says {n}")
        if len(rows) < n:
            raise _Bad(h, f"{len(rows)} entries stored, the header says {n}")
        if pending is not None and pending[1] <= h:
            if pending[1] < h:
                raise _Bad(h, f"entry {pending[0]} is out of place (stored at height {pending[1]})")
            raise _Bad(h, f"more entries stored than the {n} the header says")
        positions = [r[2] for r in rows]
        if positions != list(range(n)):
            i = next(i for i, p in enumerate(positions) if p != i)
            raise _Bad(h, f"entry {rows[i][0]} is at position {positions[i]}, expected {i}")
        base = self.frontier.size
        indices = [r[0] for r in rows]
        if indices != list(range(base, base + n)):
            i = next(i for i, x in enumerate(indices) if x != base + i)
            raise _Bad(h, f"entry at position {i} has log index {indices[i]}, expected {base + i}")
        try:
            leaves = [_sha256(b"\x00" + r[3].encode("utf-8")).digest() for r in rows]
        except AttributeError as err:
            raise _Bad(h, "an entry's stored data is not text") from err
        if leaves != [r[4] for r in rows]:
            i = next(i for i, r in enumerate(rows) if leaves[i] != r[4])
            raise _Bad(h, f"entry {rows[i][0]}: the stored leaf hash is not its data's hash")
        return leaves

    def _check_head(self, reader: Reader, witness: Checkpoint | None) -> None:
        last = self.height - 1
        if witness is not None and witness.height > last:
            raise _Bad(self.height, f"the chain ends at height {last} but a trusted checkpoint "
                                    f"names height {witness.height}: blocks were dropped")  # fmt: skip
        head = reader.head()
        if head is None:
            raise _Bad(max(last, 0), "the ledger_head row is missing")
        if head.height > last:
            raise _Bad(self.height, f"the head row names height {head.height} but the chain "
                                    f"ends at {last}: blocks were dropped")  # fmt: skip
        if head.height < last:
            raise _Bad(head.height + 1, f"the chain runs past the head row (height "
                                        f"{head.height}): blocks were inserted")  # fmt: skip
        if head.hash != self.prev_hash:
            raise _Bad(max(last, 0), "the head row's hash is not the last block's hash")
        if head.log_size != self.frontier.size or bytes(head.frontier) != self.frontier.to_bytes():
            raise _Bad(max(last, 0), "the head row's log tree does not match the entries")
