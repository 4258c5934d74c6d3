"""SQLite storage of the ledger (the default backend).

WAL journal with ``synchronous=FULL``: a block is durable once :meth:`SQLiteStorage.append`
returns, and readers never block the writer. Each block (a whole round's entries) is one
``BEGIN IMMEDIATE`` transaction, which takes the write lock before reading the head, so two
processes appending to one file cannot both build on the same head.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from smfel.aggregator.ledger.errors import LedgerConflictError, LedgerStorageError
from smfel.aggregator.ledger.storage import (
    TABLES,
    BlockBuilder,
    BlockRow,
    EntryRow,
    HeadState,
    Reader,
)

__all__ = ["SQLiteStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height     INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    header     TEXT NOT NULL,
    signatures TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    log_index INTEGER PRIMARY KEY,
    height    INTEGER NOT NULL,
    position  INTEGER NOT NULL,
    data      TEXT NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_block ON entries (height, position);
CREATE TABLE IF NOT EXISTS ledger_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    height   INTEGER NOT NULL,
    hash     TEXT NOT NULL,
    log_size INTEGER NOT NULL,
    frontier BLOB NOT NULL
);
"""

_ENTRY_COLUMNS = "log_index, height, position, data, leaf_hash"


class _SQLiteReader:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def head(self) -> HeadState | None:
        row = self._conn.execute(
            "SELECT height, hash, log_size, frontier FROM ledger_head WHERE id = 1"
        ).fetchone()
        return None if row is None else HeadState(row[0], row[1], row[2], bytes(row[3]))

    def block(self, height: int) -> BlockRow | None:
        row = self._conn.execute(
            "SELECT height, hash, header, signatures FROM blocks WHERE height = ?", (height,)
        ).fetchone()
        return None if row is None else BlockRow(*row)

    def blocks(self, start: int, stop: int | None) -> Iterator[BlockRow]:
        cur = self._conn.execute(
            "SELECT height, hash, header, signatures FROM blocks"
            " WHERE height >= ? AND height < ? ORDER BY height",
            (start, stop if stop is not None else 2**62),
        )
        for row in cur:
            yield BlockRow(*row)

    def block_entries(self, height: int) -> list[EntryRow]:
        return self._conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE height = ? ORDER BY position, log_index",  # noqa: S608
            (height,),
        ).fetchall()

    def entries(self, start: int, stop: int | None) -> Iterator[EntryRow]:
        return self._conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries"  # noqa: S608
            " WHERE log_index >= ? AND log_index < ? ORDER BY log_index",
            (start, stop if stop is not None else 2**62),
        )

    def leaf_hashes(self, stop: int) -> list[bytes]:
        cur = self._conn.execute(
            "SELECT leaf_hash FROM entries WHERE log_index < ? ORDER BY log_index", (stop,)
        )
        return [r[0] for r in cur]

    def leaf_range(self, start: int, stop: int) -> list[bytes]:
        cur = self._conn.execute(
            "SELECT leaf_hash FROM entries WHERE log_index >= ? AND log_index < ?"
            " ORDER BY log_index",
            (start, stop),
        )
        return [r[0] for r in cur]

    def scan_entries(self) -> Iterator[EntryRow]:
        return self._conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries ORDER BY height, position, log_index"  # noqa: S608
        )


class SQLiteStorage:
    """The ledger in one SQLite file. Thread-safe: one connection behind a lock."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    def open(self, *, create: bool = True) -> None:
        if self._conn is not None:
            return
        if not create and not self.path.is_file():
            raise LedgerStorageError(self.url, "no ledger database at this path")
        if not self.path.parent.is_dir():
            raise LedgerStorageError(self.url, f"directory {self.path.parent} does not exist")
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise LedgerStorageError(self.url, f"cannot open the ledger database: {err}") from err
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=10000")
            if not create:
                found = {
                    r[0]
                    for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
                missing = sorted(set(TABLES) - found)
                if missing:
                    raise LedgerStorageError(self.url, f"not a ledger database (no {missing})")
            else:  # an auditor's open (create=False) writes nothing
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO ledger_head (id, height, hash, log_size, frontier)"
                    " SELECT 1, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM blocks)",
                    (*_empty_head_values(),),
                )
        except (sqlite3.Error, LedgerStorageError) as err:
            conn.close()
            if isinstance(err, LedgerStorageError):
                raise
            raise LedgerStorageError(self.url, f"cannot open the ledger database: {err}") from err
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerStorageError(self.url, "the storage is not open")
        return self._conn

    def read(self) -> AbstractContextManager[Reader]:
        return self._read()

    @contextmanager
    def _read(self) -> Iterator[Reader]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN")  # a read transaction: one WAL snapshot for every query
                yield _SQLiteReader(conn)
            except sqlite3.Error as err:
                raise LedgerStorageError(self.url, f"read failed: {err}") from err
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def append(self, build: BlockBuilder) -> tuple[BlockRow, HeadState]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                raise LedgerConflictError(self.url, f"cannot take the write lock: {err}") from err
            try:
                reader = _SQLiteReader(conn)
                head = reader.head()
                if head is None:
                    raise LedgerStorageError(self.url, "the ledger_head row is missing")
                block, entries, new_head = build(head, reader)
                _write(conn, block, entries, new_head, head)
                conn.execute("COMMIT")
            except BaseException as err:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(err, sqlite3.IntegrityError):
                    raise LedgerConflictError(self.url, f"block not written: {err}") from err
                if isinstance(err, sqlite3.Error):
                    raise LedgerStorageError(self.url, f"block not written: {err}") from err
                raise
            return block, new_head


def _empty_head_values() -> tuple[int, str, int, bytes]:
    e = HeadState.empty()
    return (e.height, e.hash, e.log_size, e.frontier)


def _write(
    conn: sqlite3.Connection,
    block: BlockRow,
    entries: Sequence[EntryRow],
    new_head: HeadState,
    old_head: HeadState,
) -> None:
    conn.execute(
        "INSERT INTO blocks (height, hash, header, signatures) VALUES (?, ?, ?, ?)",
        (block.height, block.hash, block.header, block.signatures),
    )
    conn.executemany(
        f"INSERT INTO entries ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?)",  # noqa: S608
        entries,
    )
    cur = conn.execute(
        "UPDATE ledger_head SET height = ?, hash = ?, log_size = ?, frontier = ?"
        " WHERE id = 1 AND height = ? AND hash = ?",
        (new_head.height, new_head.hash, new_head.log_size, new_head.frontier,
         old_head.height, old_head.hash),
    )  # fmt: skip
    if cur.rowcount != 1:
        raise sqlite3.IntegrityError("the ledger head changed while the block was written")
