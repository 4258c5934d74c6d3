"""PostgreSQL storage of the ledger (psycopg 3; install the ``postgres`` extra).

Same tables as the SQLite backend. A block is one transaction that locks the head row
(``SELECT ... FOR UPDATE``) before building on it, so several aggregator workers can share one
ledger without forking it; entries go in with ``COPY``, so a round of thousands of updates is one
round trip. Reads run in a ``REPEATABLE READ READ ONLY`` transaction (one snapshot), and long
scans use server-side cursors so verifying millions of entries streams in constant memory.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from smfel.aggregator.ledger.errors import LedgerConflictError, LedgerStorageError
from smfel.aggregator.ledger.storage import (
    TABLES,
    BlockBuilder,
    BlockRow,
    EntryRow,
    HeadState,
    Reader,
    redact_url,
)

try:  # an optional dependency: only this backend needs it
    import psycopg
except ImportError:  # pragma: no cover - depends on the installation
    psycopg = None  # type: ignore[assignment]

__all__ = ["PostgresStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height     BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    header     TEXT NOT NULL,
    signatures TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    log_index BIGINT PRIMARY KEY,
    height    BIGINT NOT NULL,
    position  INTEGER NOT NULL,
    data      TEXT NOT NULL,
    leaf_hash BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_block ON entries (height, position, log_index);
CREATE TABLE IF NOT EXISTS ledger_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    height   BIGINT NOT NULL,
    hash     TEXT NOT NULL,
    log_size BIGINT NOT NULL,
    frontier BYTEA NOT NULL
);
"""

_ENTRY_COLUMNS = "log_index, height, position, data, leaf_hash"
_SCAN_BATCH = 5000
_MAX = 2**62


def _entry(row: tuple[Any, ...]) -> EntryRow:
    return (row[0], row[1], row[2], row[3], bytes(row[4]))


class _PostgresReader:
    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._names = itertools.count()

    def _stream(self, query: str, params: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        with self._conn.cursor(name=f"smfel_scan_{next(self._names)}") as cur:
            cur.itersize = _SCAN_BATCH
            cur.execute(query, params)
            yield from cur

    def head(self) -> HeadState | None:
        row = self._conn.execute(
            "SELECT height, hash, log_size, frontier FROM ledger_head WHERE id = 1"
        ).fetchone()
        return None if row is None else HeadState(row[0], row[1], row[2], bytes(row[3]))

    def block(self, height: int) -> BlockRow | None:
        row = self._conn.execute(
            "SELECT height, hash, header, signatures FROM blocks WHERE height = %s", (height,)
        ).fetchone()
        return None if row is None else BlockRow(*row)

    def blocks(self, start: int, stop: int | None) -> Iterator[BlockRow]:
        for row in self._stream(
            "SELECT height, hash, header, signatures FROM blocks"
            " WHERE height >= %s AND height < %s ORDER BY height",
            (start, stop if stop is not None else _MAX),
        ):
            yield BlockRow(*row)

    def block_entries(self, height: int) -> list[EntryRow]:
        rows = self._conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE height = %s"  # noqa: S608
            " ORDER BY position, log_index",
            (height,),
        ).fetchall()
        return [_entry(r) for r in rows]

    def entries(self, start: int, stop: int | None) -> Iterator[EntryRow]:
        for row in self._stream(
            f"SELECT {_ENTRY_COLUMNS} FROM entries"  # noqa: S608
            " WHERE log_index >= %s AND log_index < %s ORDER BY log_index",
            (start, stop if stop is not None else _MAX),
        ):
            yield _entry(row)

    def leaf_hashes(self, stop: int) -> list[bytes]:
        rows = self._conn.execute(
            "SELECT leaf_hash FROM entries WHERE log_index < %s ORDER BY log_index", (stop,)
        ).fetchall()
        return [bytes(r[0]) for r in rows]

    def leaf_range(self, start: int, stop: int) -> list[bytes]:
        cur = self._conn.execute(
            "SELECT leaf_hash FROM entries WHERE log_index >= %s AND log_index < %s"
            " ORDER BY log_index",
            (start, stop),
        )
        return [bytes(r[0]) for r in cur.fetchall()]

    def scan_entries(self) -> Iterator[EntryRow]:
        for row in self._stream(
            f"SELECT {_ENTRY_COLUMNS} FROM entries ORDER BY height, position, log_index",  # noqa: S608
            (),
        ):
            yield _entry(row)


class PostgresStorage:
    """The ledger in a PostgreSQL database. Thread-safe: one connection behind a lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = threading.RLock()

    def _error(self, reason: str) -> LedgerStorageError:
        return LedgerStorageError(redact_url(self.url), reason)

    def open(self, *, create: bool = True) -> None:
        if self._conn is not None:
            return
        if psycopg is None:
            raise self._error("the PostgreSQL backend needs psycopg: pip install 'smfel[postgres]'")
        try:
            conn = psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as err:
            raise self._error(f"cannot connect: {err}") from err
        try:
            with conn.transaction():
                # Serialise concurrent schema creation by several workers starting at once.
                conn.execute("SELECT pg_advisory_xact_lock(7346251)")
                if not create:
                    found = conn.execute(
                        "SELECT count(*) FROM information_schema.tables"
                        " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
                        (list(TABLES),),
                    ).fetchone()
                    if found is None or found[0] != len(TABLES):
                        raise self._error(f"not a ledger database (needs tables {list(TABLES)})")
                else:  # an auditor's open (create=False) writes nothing
                    conn.execute(_SCHEMA)
                    conn.execute(
                        "INSERT INTO ledger_head (id, height, hash, log_size, frontier)"
                        " SELECT 1, %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM blocks)"
                        " ON CONFLICT (id) DO NOTHING",
                        (*_empty_head_values(),),
                    )
        except (psycopg.Error, LedgerStorageError) as err:
            conn.close()
            if isinstance(err, LedgerStorageError):
                raise
            raise self._error(f"cannot create the ledger schema: {err}") from err
        self._conn = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> Any:
        if self._conn is None:
            raise self._error("the storage is not open")
        return self._conn

    def read(self) -> AbstractContextManager[Reader]:
        return self._read()

    @contextmanager
    def _read(self) -> Iterator[Reader]:
        assert psycopg is not None
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    yield _PostgresReader(conn)
            except psycopg.Error as err:
                raise self._error(f"read failed: {err}") from err

    def append(self, build: BlockBuilder) -> tuple[BlockRow, HeadState]:
        assert psycopg is not None
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    reader = _PostgresReader(conn)
                    row = conn.execute(
                        "SELECT height, hash, log_size, frontier FROM ledger_head"
                        " WHERE id = 1 FOR UPDATE"
                    ).fetchone()
                    if row is None:
                        raise self._error("the ledger_head row is missing")
                    head = HeadState(row[0], row[1], row[2], bytes(row[3]))
                    block, entries, new_head = build(head, reader)
                    conn.execute(
                        "INSERT INTO blocks (height, hash, header, signatures)"
                        " VALUES (%s, %s, %s, %s)",
                        (block.height, block.hash, block.header, block.signatures),
                    )
                    with (
                        conn.cursor() as cur,
                        cur.copy(f"COPY entries ({_ENTRY_COLUMNS}) FROM STDIN") as copy,
                    ):
                        for e in entries:
                            copy.write_row(e)
                    conn.execute(
                        "UPDATE ledger_head SET height = %s, hash = %s, log_size = %s,"
                        " frontier = %s WHERE id = 1",
                        (new_head.height, new_head.hash, new_head.log_size, new_head.frontier),
                    )
            except psycopg.errors.UniqueViolation as err:
                raise LedgerConflictError(
                    redact_url(self.url), f"block not written: {err}"
                ) from err
            except psycopg.Error as err:
                raise self._error(f"block not written: {err}") from err
            return block, new_head


def _empty_head_values() -> tuple[int, str, int, bytes]:
    e = HeadState.empty()
    return (e.height, e.hash, e.log_size, e.frontier)
