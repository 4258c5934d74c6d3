"""The node registry: which devices may contribute, under which Ed25519 keys.

Devices generate their own key pairs; ``smfel-agent enroll`` prints an enrolment request (JSON
with ``node_id``, ``key_id`` and the raw public key in base64), and an operator adds it here with
``smfel-aggregator nodes add``. A node has at most one active key; ``rotate`` retires the old one
and ``revoke`` disables the node and every key it had. Keys are never deleted, so the history stays
auditable, and every change is handed to ``on_event`` (the service appends it to the ledger) inside
the same SQLite transaction: if the ledger refuses the event, the change is rolled back.

The verification pipeline reads keys from :meth:`Registry.snapshot`, once per update or once per
batch of queued updates: an in-memory copy refreshed when SQLite's ``PRAGMA data_version`` says
another connection (the CLI in another process) committed, so a revocation takes effect on the
next update (or batch) without a restart.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal

from smfel.agent.keys import (
    Ed25519PublicKey,
    key_id,
    public_key_from_pem,
    public_key_from_raw,
    public_key_raw,
)
from smfel.aggregator.errors import RegistryError

__all__ = [
    "Enrolment",
    "KeyEvent",
    "KeyRecord",
    "NodeRecord",
    "Registry",
    "parse_enrolment",
]

log = logging.getLogger(__name__)

KeyStatus = Literal["active", "rotated", "revoked"]
EventName = Literal["enrol", "rotate", "revoke"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
    node_id    TEXT PRIMARY KEY,
    board      TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at REAL NOT NULL,
    changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    key_id     TEXT PRIMARY KEY,
    node_id    TEXT NOT NULL REFERENCES nodes(node_id),
    public_key BLOB NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'rotated', 'revoked')),
    added_at   REAL NOT NULL,
    changed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS keys_by_node ON keys(node_id);
"""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A device's enrolment request: who it is and its public key (32 raw bytes)."""

    node_id: str
    key_id: str
    public_key: bytes
    board: str = ""

    def key(self) -> Ed25519PublicKey:
        return public_key_from_raw(self.public_key)


def _decode_key(text: str) -> bytes:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return public_key_raw(public_key_from_pem(text.encode("ascii")))
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    return base64.b64decode(text.encode("ascii"), validate=True)


def parse_enrolment(obj: Mapping[str, Any] | str | bytes) -> Enrolment:
    """Check an enrolment request (a mapping or its JSON text) and return it.

    ``public_key`` may be base64 or hex of the 32 raw bytes, or a PEM block; ``key_id`` must be
    the one computed from it, so a typo cannot enrol a key under the wrong id.
    """
    if isinstance(obj, str | bytes):
        try:
            obj = json.loads(obj)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RegistryError(f"enrolment is not JSON: {err}") from err
    if not isinstance(obj, Mapping):
        raise RegistryError("enrolment must be a JSON object with node_id, key_id, public_key")
    node = obj.get("node_id")
    kid = obj.get("key_id")
    pub = obj.get("public_key")
    board = obj.get("board", "")
    if not isinstance(node, str) or not node or len(node) > 64 or "/" in node or "+" in node:
        raise RegistryError(f"node_id must be 1-64 characters without / or +, got {node!r}")
    if not isinstance(pub, str):
        raise RegistryError("public_key must be a string (base64, hex or PEM)", node_id=node)
    try:
        raw = _decode_key(pub)
        key = public_key_from_raw(raw)
    except (ValueError, binascii.Error, UnicodeEncodeError) as err:
        raise RegistryError(f"public_key is not an Ed25519 key: {err}", node_id=node) from err
    computed = key_id(key)
    if kid is not None and kid != computed:
        raise RegistryError(
            f"key_id {kid!r} does not match the public key (expected {computed})", node_id=node
        )
    return Enrolment(node, computed, raw, board if isinstance(board, str) else "")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    node_id: str
    public_key: bytes
    status: KeyStatus
    node_status: Literal["active", "revoked"]

    @property
    def usable(self) -> bool:
        return self.status == "active" and self.node_status == "active"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node_id: str
    board: str
    status: Literal["active", "revoked"]
    key_id: str | None
    created_at: float
    changed_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "board": self.board,
            "status": self.status,
            "key_id": self.key_id,
            "created_at": self.created_at,
            "changed_at": self.changed_at,
        }


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """One registry change, as the ledger records it."""

    event: EventName
    node_id: str
    key_id: str
    previous_key_id: str | None = None
    reason: str = ""


class Registry:
    """Nodes and keys in SQLite. Open with :meth:`open` or as a context manager."""

    def __init__(
        self, path: str | Path, *, on_event: Callable[[KeyEvent], None] | None = None
    ) -> None:
        self.path = Path(path)
        self.on_event = on_event
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._cache: Mapping[str, KeyRecord] = MappingProxyType({})
        self._cache_version: int | None = None
        self._public: dict[str, Ed25519PublicKey] = {}

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> Registry:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
            self._db = db
        return self

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Registry:
        return self.open()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RegistryError(f"registry {self.path} is not open")
        return self._db

    # -- changes -------------------------------------------------------------------------------
    def _change(self, fn: Callable[[sqlite3.Connection], KeyEvent]) -> KeyEvent:
        with self._lock:
            db = self.db
            db.execute("BEGIN IMMEDIATE")
            try:
                event = fn(db)
                if self.on_event is not None:
                    self.on_event(event)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._cache_version = None
        log.info("registry: %s %s key %s", event.event, event.node_id, event.key_id)
        return event

    def add(self, enrolment: Enrolment) -> KeyEvent:
        """Enrol a new node with its first key."""

        def do(db: sqlite3.Connection) -> KeyEvent:
            now = time.time()
            if db.execute("SELECT 1 FROM nodes WHERE node_id=?", (enrolment.node_id,)).fetchone():
                raise RegistryError(
                    f"node {enrolment.node_id} is already enrolled (use rotate for a new key)",
                    node_id=enrolment.node_id,
                )
            self._check_key_unused(db, enrolment)
            db.execute(
                "INSERT INTO nodes VALUES (?, ?, 'active', ?, ?)",
                (enrolment.node_id, enrolment.board, now, now),
            )
            db.execute(
                "INSERT INTO keys VALUES (?, ?, ?, 'active', ?, ?)",
                (enrolment.key_id, enrolment.node_id, enrolment.public_key, now, now),
            )
            return KeyEvent("enrol", enrolment.node_id, enrolment.key_id)

        return self._change(do)

    @staticmethod
    def _check_key_unused(db: sqlite3.Connection, enrolment: Enrolment) -> None:
        row = db.execute("SELECT node_id FROM keys WHERE key_id=?", (enrolment.key_id,)).fetchone()
        if row:
            raise RegistryError(
                f"key {enrolment.key_id} is already registered (to node {row[0]})",
                node_id=enrolment.node_id,
            )

    def _active_node(self, db: sqlite3.Connection, node_id: str) -> None:
        row = db.execute("SELECT status FROM nodes WHERE node_id=?", (node_id,)).fetchone()
        if row is None:
            raise RegistryError(f"node {node_id} is not enrolled", node_id=node_id)
        if row[0] != "active":
            raise RegistryError(f"node {node_id} is revoked", node_id=node_id)

    def rotate(self, enrolment: Enrolment) -> KeyEvent:
        """Replace a node's active key with the one in ``enrolment`` (same ``node_id``)."""

        def do(db: sqlite3.Connection) -> KeyEvent:
            now = time.time()
            self._active_node(db, enrolment.node_id)
            self._check_key_unused(db, enrolment)
            old = db.execute(
                "SELECT key_id FROM keys WHERE node_id=? AND status='active'", (enrolment.node_id,)
            ).fetchone()
            db.execute(
                "UPDATE keys SET status='rotated', changed_at=? "
                "WHERE node_id=? AND status='active'",
                (now, enrolment.node_id),
            )
            db.execute(
                "INSERT INTO keys VALUES (?, ?, ?, 'active', ?, ?)",
                (enrolment.key_id, enrolment.node_id, enrolment.public_key, now, now),
            )
            db.execute("UPDATE nodes SET changed_at=? WHERE node_id=?", (now, enrolment.node_id))
            return KeyEvent("rotate", enrolment.node_id, enrolment.key_id, old[0] if old else None)

        return self._change(do)

    def revoke(self, node_id: str, reason: str = "") -> KeyEvent:
        """Disable a node and all of its keys; its updates are refused from then on."""

        def do(db: sqlite3.Connection) -> KeyEvent:
            now = time.time()
            self._active_node(db, node_id)
            row = db.execute(
                "SELECT key_id FROM keys WHERE node_id=? AND status='active'", (node_id,)
            ).fetchone()
            db.execute(
                "UPDATE keys SET status='revoked', changed_at=? "
                "WHERE node_id=? AND status!='revoked'",
                (now, node_id),
            )
            db.execute(
                "UPDATE nodes SET status='revoked', changed_at=? WHERE node_id=?", (now, node_id)
            )
            return KeyEvent("revoke", node_id, row[0] if row else "", reason=reason)

        return self._change(do)

    # -- reading -------------------------------------------------------------------------------
    def nodes(self) -> list[NodeRecord]:
        with self._lock:
            rows = self.db.execute(
                "SELECT n.node_id, n.board, n.status, k.key_id, n.created_at, n.changed_at "
                "FROM nodes n LEFT JOIN keys k ON k.node_id = n.node_id AND k.status = 'active' "
                "ORDER BY n.node_id"
            ).fetchall()
        return [NodeRecord(*r) for r in rows]

    def _refresh(self) -> None:
        db = self.db
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if version == self._cache_version:
            return
        rows = db.execute(
            "SELECT k.key_id, k.node_id, k.public_key, k.status, n.status "
            "FROM keys k JOIN nodes n ON n.node_id = k.node_id"
        ).fetchall()
        self._cache = MappingProxyType(
            {r[0]: KeyRecord(r[0], r[1], bytes(r[2]), r[3], r[4]) for r in rows}
        )
        self._cache_version = version

    def lookup(self, kid: str) -> KeyRecord | None:
        """The key ``kid`` with its node's status, or ``None`` if it was never registered."""
        return self.snapshot().get(kid)

    def snapshot(self) -> Mapping[str, KeyRecord]:
        """Every key by id, as committed now (one ``PRAGMA data_version`` read). A refresh
        replaces the mapping instead of changing it, so a snapshot stays as it was: a batch of
        updates is judged against one registry state for the price of one lookup."""
        with self._lock:
            self._refresh()
            return self._cache

    def public_key(self, record: KeyRecord) -> Ed25519PublicKey:
        """The key object for ``record`` (parsed once and cached)."""
        pub = self._public.get(record.key_id)
        if pub is None:
            pub = public_key_from_raw(record.public_key)
            self._public[record.key_id] = pub
        return pub
