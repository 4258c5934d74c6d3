"""The ledger facade: append signed blocks, read them back, serve proofs, verify the whole chain.

DESIGN.md "Ledger": one block per closed round plus key events, chained by hash, signed by the
validator key(s), with RFC 9162 Merkle roots over each block's entries and over the whole log.
Usage::

    with Ledger.open("sqlite:///ledger.db", signing_keys=[key]) as ledger:
        ledger.append_round(3, "exact", accepted=[("n1", "sha256:..", 120.0)], rejected=[],
                            reputation={"n1": 1.0}, global_model_hash="sha256:..")
        ledger.checkpoint()  # (height, head_hash, tree_size, merkle_root)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from smfel.agent.codec import canonical_json
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey
from smfel.aggregator.ledger.block import (
    Block,
    BlockHeader,
    Signature,
    sign_payload,
    trusted_key_map,
)
from smfel.aggregator.ledger.checkpoint import Checkpoint, sign_checkpoint
from smfel.aggregator.ledger.entry import Entry, LogEntry
from smfel.aggregator.ledger.errors import (
    LedgerInputError,
    LedgerNotFoundError,
    LedgerStorageError,
)
from smfel.aggregator.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    RangeRoot,
    consistency_path_from,
    hash_text,
    inclusion_path_from,
    root_from_consistency,
    root_from_inclusion,
    root_hash,
)
from smfel.aggregator.ledger.proofs import ConsistencyProof, InclusionProof
from smfel.aggregator.ledger.storage import (
    BlockRow,
    EntryRow,
    HeadState,
    Reader,
    Storage,
    open_storage,
    redact_url,
)
from smfel.aggregator.ledger.subtrees import SubtreeCache
from smfel.aggregator.ledger.verify import VerifyReport, verify_chain

__all__ = ["Ledger", "utc_timestamp"]

log = logging.getLogger(__name__)


def utc_timestamp() -> str:
    """Now as RFC 3339 UTC with microseconds, e.g. ``2026-11-24T19:53:17.123456Z``."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _block_from_rows(row: BlockRow, entries: Sequence[EntryRow]) -> Block:
    header = BlockHeader.parse(row.header)
    sigs = json.loads(row.signatures)
    return Block(
        header=header,
        entries=tuple(Entry(e[3].encode("utf-8")) for e in entries),
        signatures=tuple(Signature.from_json(s) for s in sigs),
    )


class Ledger:
    """The ledger over one :class:`Storage`. Construction does no I/O; :meth:`open` connects."""

    def __init__(self, storage: Storage, signing_keys: Sequence[Ed25519PrivateKey] = ()) -> None:
        self._storage = storage
        self._keys = tuple(signing_keys)
        for k in self._keys:
            if not isinstance(k, Ed25519PrivateKey):
                raise LedgerInputError("signing_keys", f"expected Ed25519 private keys, got {k!r}")
        # The frontier of the log tree after the block with this hash, once checked.
        self._frontier: tuple[str, Frontier] | None = None
        self._subtrees = SubtreeCache()

    @classmethod
    def open(
        cls, url: str, signing_keys: Sequence[Ed25519PrivateKey] = (), *, create: bool = True
    ) -> Ledger:
        """Open the ledger at ``url`` (``sqlite:///..`` or ``postgresql://..``), creating it
        unless ``create`` is False (then a database that is not a ledger is an error)."""
        ledger = cls(open_storage(url), signing_keys)
        ledger._storage.open(create=create)
        log.debug("ledger open at %s", redact_url(ledger._storage.url))
        return ledger

    @property
    def url(self) -> str:
        return self._storage.url

    def close(self) -> None:
        self._storage.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- appending -----------------------------------------------------------------------------

    def append_round(
        self,
        round: int,
        strategy: str,
        accepted: Iterable[tuple[str, str, float]] = (),
        rejected: Iterable[tuple[str, str | None, str]] = (),
        reputation: Mapping[str, float] | None = None,
        global_model_hash: str | None = None,
        *,
        timestamp: str | None = None,
    ) -> Block:
        """Append the block of a closed round: accepted updates (node, update hash, weight),
        rejected ones (node, update hash or None, reason), the reputation snapshot and the hash
        of the new global model (None when the round had no quorum)."""
        entries = [Entry.accepted(*a) for a in accepted]
        entries += [Entry.rejected(*r) for r in rejected]
        if reputation:
            entries.append(Entry.reputation(reputation))
        if global_model_hash is not None:
            entries.append(Entry.global_model(global_model_hash))
        return self.append_block(
            "round", entries, round=round, strategy=strategy, timestamp=timestamp
        )

    def append_key_event(
        self,
        event: str,
        node: str,
        key_id: str,
        *,
        public_key: str | None = None,
        previous_key_id: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        timestamp: str | None = None,
    ) -> Block:
        """Append a key event block: ``enrol``, ``rotate`` or ``revoke`` of ``node``'s key."""
        entry = Entry.key_event(
            event,
            node,
            key_id,
            public_key=public_key,
            previous_key_id=previous_key_id,
            reason=reason,
            details=details,
        )
        return self.append_block("key_event", [entry], timestamp=timestamp)

    def append_block(
        self,
        kind: str,
        entries: Sequence[Entry],
        *,
        round: int | None = None,
        strategy: str | None = None,
        timestamp: str | None = None,
    ) -> Block:
        """Sign and append one block of ``entries`` in one transaction; returns the block."""
        if not self._keys:
            raise LedgerInputError("signing_keys", "appending needs at least one validator key")
        entries = tuple(entries)
        for e in entries:
            if not isinstance(e, Entry):
                raise LedgerInputError("entries", f"expected Entry objects, got {e!r}")
        stamp = timestamp if timestamp is not None else utc_timestamp()
        leaves = [e.leaf_hash for e in entries]
        block_root = hash_text(root_hash(leaves))
        built: list[tuple[BlockHeader, tuple[Signature, ...], Frontier]] = []

        def build(head: HeadState, reader: Reader) -> tuple[BlockRow, list[EntryRow], HeadState]:
            built.clear()
            frontier = self._checked_frontier(head, reader)
            frontier.extend(leaves)
            header = BlockHeader(
                height=head.height + 1,
                prev_hash=head.hash,
                timestamp=stamp,
                kind=kind,
                round=round,
                strategy=strategy,
                entry_count=len(entries),
                merkle_root=block_root,
                log_size=frontier.size,
                log_root=hash_text(frontier.root()),
            )
            payload = header.canonical()
            sigs = sign_payload(payload, self._keys)
            digest = header.hash
            row = BlockRow(
                header.height,
                digest,
                payload.decode("utf-8"),
                canonical_json([s.to_json() for s in sigs]).decode("utf-8"),
            )
            rows: list[EntryRow] = [
                (head.log_size + i, header.height, i, e.data.decode("utf-8"), leaf)
                for i, (e, leaf) in enumerate(zip(entries, leaves, strict=True))
            ]
            built.append((header, sigs, frontier))
            return row, rows, HeadState(header.height, digest, frontier.size, frontier.to_bytes())

        self._storage.append(build)
        header, sigs, frontier = built[0]
        self._frontier = (header.hash, frontier.copy())
        log.debug("ledger block %d (%s, %d entries)", header.height, kind, len(entries))
        return Block(header, entries, sigs)

    def _checked_frontier(self, head: HeadState, reader: Reader) -> Frontier:
        """The log tree's frontier at ``head``, checked against the head block's signed header
        (the stored copy is a cache; a damaged one is rebuilt from the leaf hashes)."""
        if self._frontier is not None and self._frontier[0] == head.hash:
            return self._frontier[1].copy()
        if head.height < 0:
            return Frontier()
        row = reader.block(head.height)
        if row is None or row.hash != head.hash:
            raise LedgerStorageError(
                self._storage.url,
                f"the head row names block {head.height}, which is not stored; "
                "run `smfel-aggregator ledger verify`",
            )
        header = BlockHeader.parse(row.header)
        try:
            frontier = Frontier.from_bytes(head.log_size, head.frontier)
        except ValueError:
            frontier = Frontier()
        if frontier.size != header.log_size or hash_text(frontier.root()) != header.log_root:
            log.warning("ledger head frontier does not match block %d; rebuilding", head.height)
            frontier = Frontier.of(reader.leaf_hashes(header.log_size))
            if frontier.size != header.log_size or hash_text(frontier.root()) != header.log_root:
                raise LedgerStorageError(
                    self._storage.url,
                    "the stored entries do not match the head block's log root; "
                    "run `smfel-aggregator ledger verify`",
                )
        return frontier

    # -- reading -------------------------------------------------------------------------------

    def _head(self, reader: Reader) -> HeadState:
        head = reader.head()
        if head is None:
            raise LedgerStorageError(self._storage.url, "the ledger_head row is missing")
        return head

    def head(self) -> Block | None:
        """The last block, or None for an empty ledger."""
        with self._storage.read() as reader:
            head = self._head(reader)
            return None if head.height < 0 else self._block(reader, head.height)

    def _block(self, reader: Reader, height: int) -> Block:
        row = reader.block(height)
        if row is None:
            head = self._head(reader)
            raise LedgerNotFoundError("block at height", height, head.height + 1)
        return _block_from_rows(row, reader.block_entries(height))

    def block(self, height: int) -> Block:
        with self._storage.read() as reader:
            return self._block(reader, height)

    def blocks(self, start: int = 0, stop: int | None = None) -> list[Block]:
        """Blocks with ``start <= height < stop`` (to the end when ``stop`` is None)."""
        with self._storage.read() as reader:
            return [
                _block_from_rows(row, reader.block_entries(row.height))
                for row in reader.blocks(start, stop)
            ]

    def headers(self, start: int = 0, stop: int | None = None) -> list[BlockHeader]:
        """Block headers with ``start <= height < stop``, without reading the entries."""
        with self._storage.read() as reader:
            return [BlockHeader.parse(row.header) for row in reader.blocks(start, stop)]

    def last_round(self) -> int | None:
        """The highest round recorded in a ``round`` block (None before the first)."""
        rounds = [h.round for h in self.headers() if h.kind == "round" and h.round is not None]
        return max(rounds, default=None)

    def entries(self, start: int = 0, stop: int | None = None) -> list[LogEntry]:
        """Log entries with ``start <= log_index < stop``."""
        with self._storage.read() as reader:
            return [
                LogEntry(r[0], r[1], r[2], Entry(r[3].encode("utf-8")))
                for r in reader.entries(start, stop)
            ]

    def entry(self, log_index: int) -> LogEntry:
        found = self.entries(log_index, log_index + 1)
        if not found:
            raise LedgerNotFoundError("entry", log_index, self.checkpoint().tree_size)
        return found[0]

    def checkpoint(self) -> Checkpoint:
        """``(height, head_hash, tree_size, merkle_root)`` of the head (from its signed header)."""
        with self._storage.read() as reader:
            head = self._head(reader)
            if head.height < 0:
                return Checkpoint(-1, head.hash, 0, hash_text(EMPTY_ROOT))
            row = reader.block(head.height)
            if row is None:
                raise LedgerStorageError(self._storage.url, f"head block {head.height} is missing")
            header = BlockHeader.parse(row.header)
            return Checkpoint(header.height, row.hash, header.log_size, header.log_root)

    def signed_checkpoint(self, timestamp: str | None = None) -> dict[str, Any]:
        """The checkpoint signed by this ledger's validator keys, for ``ledger/checkpoint``."""
        if not self._keys:
            raise LedgerInputError("signing_keys", "signing a checkpoint needs a validator key")
        return sign_checkpoint(self.checkpoint(), self._keys, timestamp or utc_timestamp())

    # -- proofs --------------------------------------------------------------------------------

    def _log_size(self, reader: Reader) -> int:
        return self._head(reader).log_size

    def _range_root(self, reader: Reader) -> RangeRoot:
        """``MTH`` of a range of the log, read through ``reader`` and the subtree cache."""

        def range_root(lo: int, hi: int) -> bytes:
            try:
                return self._subtrees.range_root(reader.leaf_range, lo, hi)
            except ValueError as err:  # fewer leaf hashes stored than the head says
                raise LedgerStorageError(self._storage.url, str(err)) from err

        return range_root

    def inclusion_proof(self, entry_index: int, tree_size: int | None = None) -> InclusionProof:
        """Proof that entry ``entry_index`` is in the log tree of ``tree_size`` entries
        (default: the whole log)."""
        with self._storage.read() as reader:
            total = self._log_size(reader)
            size = total if tree_size is None else tree_size
            if not 0 < size <= total:
                raise LedgerInputError("tree_size", f"expected 1..{total}, got {size}")
            if not 0 <= entry_index < size:
                raise LedgerInputError("entry", f"expected 0..{size - 1}, got {entry_index}")
            path = inclusion_path_from(self._range_root(reader), entry_index, size)
            leaf = reader.leaf_range(entry_index, entry_index + 1)[0]
        # The path holds every subtree the root is made of: fold it instead of rehashing.
        root = root_from_inclusion(leaf, entry_index, size, path)
        assert root is not None
        return InclusionProof(entry_index, size, leaf, tuple(path), root)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Proof that the log tree of ``new_size`` entries extends the one of ``old_size``."""
        with self._storage.read() as reader:
            total = self._log_size(reader)
            size = total if new_size is None else new_size
            if not 0 <= size <= total:
                raise LedgerInputError("new_size", f"expected 0..{total}, got {size}")
            if not 0 <= old_size <= size:
                raise LedgerInputError("old_size", f"expected 0..{size}, got {old_size}")
            range_root = self._range_root(reader)
            path = consistency_path_from(range_root, old_size, size)
            old_root = range_root(0, old_size)
            new_root = root_from_consistency(old_size, size, old_root, path)
            if new_root is None:  # old_size 0: no path to fold
                new_root = range_root(0, size)
        return ConsistencyProof(old_size, size, old_root, new_root, tuple(path))

    def root_at(self, tree_size: int) -> bytes:
        """``MTH`` of the first ``tree_size`` entries of the log."""
        with self._storage.read() as reader:
            total = self._log_size(reader)
            if not 0 <= tree_size <= total:
                raise LedgerInputError("tree_size", f"expected 0..{total}, got {tree_size}")
            return self._range_root(reader)(0, tree_size)

    # -- verification --------------------------------------------------------------------------

    def verify(
        self,
        trusted_keys: Iterable[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey] | None = None,
        k: int = 1,
        checkpoint: Checkpoint | None = None,
    ) -> VerifyReport:
        """Check every block and entry (see :mod:`smfel.aggregator.ledger.verify`).

        ``trusted_keys``: the validators' public keys (None: do not check signatures);
        ``k``: how many distinct validators must have signed each block; ``checkpoint``: a
        checkpoint kept elsewhere that the ledger must contain.
        """
        trusted = None if trusted_keys is None else trusted_key_map(trusted_keys)
        with self._storage.read() as reader:
            report = verify_chain(reader, trusted, k, checkpoint)
        if not report.ok:
            log.warning("ledger verification failed at height %s: %s",
                        report.first_bad_height, report.reason)  # fmt: skip
        return report
