"""The ledger's storage interface and the choice of backend by URL.

Two backends implement :class:`Storage`: SQLite (``sqlite:///relative/path`` or
``sqlite:////absolute/path``, or a plain file path; the default) and PostgreSQL
(``postgresql://...``). Both keep the same three tables:

* ``blocks(height, hash, header, signatures)``: the canonical header JSON as stored text, so
  verification hashes exactly what was signed;
* ``entries(log_index, height, position, data, leaf_hash)``: entry JSON and its RFC 9162 leaf hash;
* ``ledger_head``: one row naming the last block and holding the log tree's frontier, written in
  the same transaction as each block. Verification checks it against the chain, so a block deleted
  from the end does not go unnoticed; a deleted block *and* a rewound head row can only be caught
  against a checkpoint someone kept (a witness), which :meth:`Ledger.verify` accepts.

The storage layer stores and returns rows; it does not judge them (verification does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from smfel.aggregator.ledger.block import GENESIS_HASH
from smfel.aggregator.ledger.errors import LedgerInputError

TABLES = ("blocks", "entries", "ledger_head")

__all__ = [
    "TABLES",
    "BlockBuilder",
    "BlockRow",
    "EntryRow",
    "HeadState",
    "Reader",
    "Storage",
    "open_storage",
    "redact_url",
    "sqlite_path",
]

#: ``(log_index, height, position, data, leaf_hash)``: plain tuples, as verification scans
#: millions of them.
EntryRow = tuple[int, int, int, str, bytes]


@dataclass(frozen=True, slots=True)
class BlockRow:
    height: int
    hash: str
    header: str
    signatures: str


@dataclass(frozen=True, slots=True)
class HeadState:
    """The ``ledger_head`` row: last height (-1 when empty), its hash, log size, tree frontier."""

    height: int
    hash: str
    log_size: int
    frontier: bytes

    @classmethod
    def empty(cls) -> HeadState:
        return cls(-1, GENESIS_HASH, 0, b"")


class Reader(Protocol):
    """Reads within one transaction, so a verification sees one consistent snapshot."""

    def head(self) -> HeadState | None: ...

    def block(self, height: int) -> BlockRow | None: ...

    def blocks(self, start: int, stop: int | None) -> Iterator[BlockRow]:
        """Blocks with ``start <= height < stop`` in height order (all from ``start`` if None)."""
        ...

    def block_entries(self, height: int) -> list[EntryRow]:
        """Entries stored with this height, by position."""
        ...

    def entries(self, start: int, stop: int | None) -> Iterator[EntryRow]:
        """Entries with ``start <= log_index < stop`` in log order."""
        ...

    def leaf_hashes(self, stop: int) -> list[bytes]:
        """Stored leaf hashes of the entries with ``log_index < stop``, in log order."""
        ...

    def leaf_range(self, start: int, stop: int) -> list[bytes]:
        """Stored leaf hashes of the entries with ``start <= log_index < stop``, in log order."""
        ...

    def scan_entries(self) -> Iterator[EntryRow]:
        """Every entry ordered by (height, position, log_index): the order verification checks."""
        ...


#: Builds the rows of the next block from the current head, inside the writing transaction.
BlockBuilder = Callable[[HeadState, Reader], tuple[BlockRow, Sequence[EntryRow], HeadState]]


class Storage(Protocol):
    """A ledger database; everything but the constructor needs :meth:`open` first."""

    url: str

    def open(self, *, create: bool = True) -> None:
        """Connect; create the schema if missing, or with ``create=False`` fail when the database
        is not already a ledger (so a mistyped path is an error, not a new empty ledger)."""
        ...

    def close(self) -> None: ...

    def read(self) -> AbstractContextManager[Reader]: ...

    def append(self, build: BlockBuilder) -> tuple[BlockRow, HeadState]:
        """Read the head, build the block from it and write block, entries and head in one
        transaction. Raises ``LedgerConflictError`` if another writer got there first."""
        ...


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def sqlite_path(url: str) -> Path:
    """The file of an SQLite URL: ``sqlite:///rel.db`` is relative, ``sqlite:////abs.db`` absolute
    (the convention of SQLAlchemy); a URL without a scheme is a path."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://") :]
        if not rest.startswith("/") or len(rest) < 2:
            raise LedgerInputError("db", f"expected sqlite:///path, got {url!r}")
        return Path(rest[1:])
    return Path(url)


def open_storage(url: str) -> Storage:
    """The backend for ``url``, not yet opened (constructors do no I/O)."""
    if not isinstance(url, str) or not url:
        raise LedgerInputError("db", f"expected a database URL, got {url!r}")
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        from smfel.aggregator.ledger.postgres import PostgresStorage

        return PostgresStorage(url)
    if scheme in ("sqlite", ""):
        from smfel.aggregator.ledger.sqlite import SQLiteStorage

        return SQLiteStorage(sqlite_path(url))
    raise LedgerInputError(
        "db", f"expected a sqlite:///path or postgresql://... URL, got scheme {scheme!r}"
    )
