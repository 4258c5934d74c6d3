"""Fixtures of the ledger tests: one real database per test on each backend.

``backend`` runs a test on SQLite and on a real PostgreSQL server started for the session
(tests/support/postgres.py); ``Backend.sql`` edits the database behind the ledger's back, the way
an attacker with database access would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from smfel.agent.keys import Ed25519PrivateKey
from tests.support.postgres import PostgresServer, postgres_db, postgres_server

__all__ = ["Backend", "postgres_db", "postgres_server"]


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    url: str
    path: Path | None = None  # the SQLite file

    def sql(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement directly on the database (``?`` placeholders on both backends)."""
        if self.path is not None:
            conn = sqlite3.connect(self.path)
            try:
                rows = conn.execute(statement, tuple(params)).fetchall()
                conn.commit()
            finally:
                conn.close()
            return rows
        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(statement.replace("?", "%s"), tuple(params))
            return cur.fetchall() if cur.description is not None else []


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        yield Backend("sqlite", f"sqlite:///{path}", path)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        yield Backend("postgres", server.create_schema("ledger"))


@pytest.fixture
def keys() -> list[Ed25519PrivateKey]:
    """Three validator keys."""
    return [Ed25519PrivateKey.generate() for _ in range(3)]
