"""The store-and-forward outbox: outgoing messages in SQLite until the broker acknowledges them.

A message is committed (WAL, ``synchronous=FULL`` for the insert) before it is handed to the MQTT client and is
deleted only when its PUBACK arrives, so a lost connection, a broker restart or a killed process
loses nothing: on reconnect or restart the rows are published again in insertion order (row ids
only grow, ``AUTOINCREMENT``). Delivery is therefore at least once; receivers deduplicate.

The outbox is bounded by message count, total bytes and age; when a bound is exceeded the
oldest messages are dropped and the persistent ``dropped`` counter records every one ever
dropped (it survives restarts, so monitoring sees losses that happened while it was away).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from smfel.agent.transport.config import OutboxLimits
from smfel.agent.transport.errors import TransportError

__all__ = ["Outbox", "OutboxEntry"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    created: float


class Outbox:
    """One SQLite outbox file. Thread-safe; :meth:`open` does the I/O, the constructor none."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        limits: OutboxLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.limits = limits or OutboxLimits()
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._count = 0
        self._bytes = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> Outbox:
        if self._db is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL (durable against a crash of the process) for deletes; put() switches to
            # FULL so a stored message also survives a power loss.
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            count, size = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
        except sqlite3.Error as err:
            raise TransportError(f"cannot open the outbox {self.path}: {err}") from err
        self._db, self._count, self._bytes = db, int(count), int(size)
        if count:
            log.info("outbox %s holds %d unacknowledged messages", self.path, count)
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Outbox:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise TransportError(f"the outbox {self.path} is not open")
        return self._db

    # -- counters ----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Messages ever dropped by the bounds (persistent)."""
        with self._lock:
            row = (
                self._conn().execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
            )
        return int(row[0]) if row else 0

    def _add_dropped(self, db: sqlite3.Connection, n: int) -> None:
        if n:
            db.execute(
                "INSERT INTO counters(name, value) VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (n,),
            )

    # -- operations --------------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Store a message durably; returns its id. Enforces the bounds (oldest dropped first,
        never the message just stored unless it alone exceeds ``max_bytes``)."""
        if len(payload) > self.limits.max_bytes:
            raise TransportError(
                f"a {len(payload)}-byte message exceeds the outbox bound of "
                f"{self.limits.max_bytes} bytes"
            )
        with self._lock:
            db = self._conn()
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "INSERT INTO outbox(topic, payload, qos, retain, created) VALUES (?,?,?,?,?)",
                    (topic, payload, qos, int(retain), self._clock()),
                )
                row_id = int(cur.lastrowid or 0)
                self._count += 1
                self._bytes += len(payload)
                dropped = self._enforce(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                self._recount(db)
                raise
            finally:
                db.execute("PRAGMA synchronous=NORMAL")
        if dropped:
            log.warning("outbox full: dropped the %d oldest messages", dropped)
        return row_id

    def _recount(self, db: sqlite3.Connection) -> None:
        count, size = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()
        self._count, self._bytes = int(count), int(size)

    def _enforce(self, db: sqlite3.Connection) -> int:
        dropped = 0
        while self._count > self.limits.max_messages or self._bytes > self.limits.max_bytes:
            row = db.execute(
                "SELECT id, LENGTH(payload) FROM outbox ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                break
            db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
            self._count -= 1
            self._bytes -= int(row[1])
            dropped += 1
        self._add_dropped(db, dropped)
        return dropped

    def expire(self, now: float | None = None) -> int:
        """Drop messages older than ``max_age``; returns how many."""
        limit = (self._clock() if now is None else now) - self.limits.max_age.total_seconds()
        with self._lock:
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute("DELETE FROM outbox WHERE created < ?", (limit,))
                n = cur.rowcount
                self._add_dropped(db, n)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                self._recount(db)
        if n:
            log.warning("outbox: dropped %d messages older than %s", n, self.limits.max_age)
        return n

    def pending(self, *, after: int = 0, limit: int = 100) -> list[OutboxEntry]:
        """Stored messages with id > ``after``, oldest first."""
        with self._lock:
            rows = (
                self._conn()
                .execute(
                    "SELECT id, topic, payload, qos, retain, created FROM outbox "
                    "WHERE id > ? ORDER BY id LIMIT ?",
                    (after, limit),
                )
                .fetchall()
            )
        return [OutboxEntry(r[0], r[1], bytes(r[2]), r[3], bool(r[4]), r[5]) for r in rows]

    def ack(self, entry_id: int) -> bool:
        """Delete an acknowledged message; False if it was already gone (e.g. dropped)."""
        with self._lock:
            db = self._conn()
            row = db.execute(
                "SELECT LENGTH(payload) FROM outbox WHERE id = ?", (entry_id,)
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM outbox WHERE id = ?", (entry_id,))
            self._count -= 1
            self._bytes -= int(row[0])
            return True

    def oldest_age(self, now: float | None = None) -> dt.timedelta | None:
        with self._lock:
            row = self._conn().execute("SELECT MIN(created) FROM outbox").fetchone()
        if row is None or row[0] is None:
            return None
        return dt.timedelta(seconds=(self._clock() if now is None else now) - row[0])
