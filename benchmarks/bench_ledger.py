"""Ledger append and verify rates, each beside a naive baseline, in one run.

* ``append``: entries per second written by ``Ledger.append_round`` with one transaction per
  round (WAL, ``synchronous=FULL``: every block is on disk when the call returns) on SQLite, and on
  PostgreSQL (``fsync=on``, ``synchronous_commit=on``) when one can be started; the baseline
  commits every entry on its own (one block per entry). Target: >= 2,000 entries/s on SQLite.
* ``verify``: seconds to verify a ledger of 1,000,000 entries (1,000 signed blocks of 1,000
  entries) with the O(log n) frontier (target < 10 s); the baseline recomputes the log-wide root
  from all leaves at every block (RFC 9162's definition applied literally), measured on the first
  100,000 entries and reported per entry; on PostgreSQL, the rate over 200,000 entries.
* ``proof``: seconds to serve an inclusion and a consistency proof in the 1,000,000-entry tree.

Set ``SMFEL_BENCH_POSTGRES_URL`` to measure an existing PostgreSQL; otherwise a throw-away server
is started as in the tests (tests/support/postgres.py), and the entry is left out if that fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._core import Result, benchmark, time_per_call
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey, key_id, verify_bytes
from smfel.aggregator.ledger import Ledger
from smfel.aggregator.ledger.merkle import hash_text, root_hash
from smfel.aggregator.ledger.sqlite import SQLiteStorage

ROUND_SIZE = 100  # entries per round block in the append benchmark
ROUNDS_PER_SAMPLE = 20
VERIFY_ENTRIES = 1_000_000
VERIFY_BLOCK = 1_000
BASELINE_ENTRIES = 100_000
PG_VERIFY_ENTRIES = 200_000


def _round(ledger: Ledger, r: int, n: int) -> None:
    accepted = [(f"node-{i:05d}", f"sha256:{r:032x}{i:032x}", 100.0 + i) for i in range(n - 3)]
    ledger.append_round(
        r,
        "exact",
        accepted=accepted,
        rejected=[("node-99999", None, "bad_signature")],
        reputation={"node-00000": 1.0},
        global_model_hash=f"sha256:{r:064x}",
    )


def _rate(name: str, params: dict[str, Any], t: tuple[float, float, float], **kw: Any) -> Result:
    med, lo, hi = t  # seconds per entry
    return Result(name, params, 1.0 / med, 1.0 / hi, 1.0 / lo, "entries/s", **kw)


def _append_results(url: str, backend: str) -> list[Result]:
    key = Ed25519PrivateKey.generate()
    out: list[Result] = []
    with Ledger.open(url, signing_keys=[key]) as ledger:
        counter = iter(range(1, 10**9))

        def batch() -> None:
            for _ in range(ROUNDS_PER_SAMPLE):
                _round(ledger, next(counter), ROUND_SIZE)

        t = time_per_call(batch, number=1, repeat=5, per=ROUNDS_PER_SAMPLE * ROUND_SIZE)
        out.append(
            _rate(
                f"ledger.append.{backend}",
                {"entries_per_block": ROUND_SIZE, "durable": True},
                t,
                extra={"target_entries_per_s": 2000, "blocks_per_s": 1.0 / (t[0] * ROUND_SIZE)},
            )
        )

        def one_by_one() -> None:
            for _ in range(50):
                ledger.append_round(
                    next(counter), "exact", accepted=[("n", "sha256:" + "0" * 64, 1.0)]
                )

        t = time_per_call(one_by_one, number=1, repeat=3, per=50)
        out.append(
            _rate(
                f"ledger.append.{backend}.per_entry_commit",
                {"entries_per_block": 1, "durable": True},
                t,
                baseline="one transaction (and fsync) per entry",
            )
        )
    return out


@contextmanager
def _postgres() -> Iterator[Callable[[str], str] | None]:
    """A maker of fresh schemas (as URLs) on a PostgreSQL server, or None without one."""
    url = os.environ.get("SMFEL_BENCH_POSTGRES_URL")
    if url:
        import psycopg

        def schema(prefix: str) -> str:
            name = f"{prefix}_{os.getpid()}_{time.monotonic_ns()}"
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{name}"')
            sep = "&" if "?" in url else "?"
            return f"{url}{sep}options=-csearch_path%3D{name}"

        yield schema
        return
    try:
        from tests.support.postgres import PostgresServer

        server = PostgresServer(fsync=True).start()
    except Exception:  # no PostgreSQL here: leave the entries out
        yield None
        return
    try:
        yield server.create_schema
    finally:
        server.stop()


def _build_large(path: Path, key: Ed25519PrivateKey) -> float:
    t0 = time.perf_counter()
    with Ledger.open(f"sqlite:///{path}", signing_keys=[key]) as ledger:
        for r in range(VERIFY_ENTRIES // VERIFY_BLOCK):
            _round(ledger, r, VERIFY_BLOCK)
    return time.perf_counter() - t0


def _proof_results(path: Path) -> list[Result]:
    """Inclusion and consistency proofs in the large log: the first one a process serves (it
    reads every leaf hash), then others (from the cache of complete subtrees)."""
    url = f"sqlite:///{path}"
    rng = random.Random(7)
    out: list[Result] = []
    for what in ("inclusion", "consistency"):

        def prove(ledger: Ledger, what: str = what) -> object:
            i = rng.randrange(1, VERIFY_ENTRIES)
            return ledger.inclusion_proof(i) if what == "inclusion" else ledger.consistency_proof(i)

        def cold(prove: Callable[[Ledger], object] = prove) -> None:
            with Ledger.open(url, create=False) as fresh:
                prove(fresh)

        params = {"tree_size": VERIFY_ENTRIES}
        t = time_per_call(cold, number=1, repeat=3)
        out.append(Result(f"ledger.proof.{what}.first", params, *t, "s",
                          extra={"note": "a fresh process: reads every leaf hash once"}))  # fmt: skip
        with Ledger.open(url, create=False) as ledger:
            prove(ledger)
            t = time_per_call(lambda: prove(ledger), number=50, repeat=3)
        med, lo, hi = (x * 1e3 for x in t)
        out.append(Result(f"ledger.proof.{what}.cached", params, med, lo, hi, "ms"))
    return out


def _verify_postgres(url: str) -> Result:
    key = Ed25519PrivateKey.generate()
    with Ledger.open(url, signing_keys=[key]) as ledger:
        for r in range(PG_VERIFY_ENTRIES // VERIFY_BLOCK):
            _round(ledger, r, VERIFY_BLOCK)
        trusted = {key_id(key): key.public_key()}
        assert ledger.verify(trusted).entries == PG_VERIFY_ENTRIES
        t = time_per_call(lambda: ledger.verify(trusted), number=1, repeat=3, per=PG_VERIFY_ENTRIES)
    return _rate(
        "ledger.verify.postgresql",
        {"entries": PG_VERIFY_ENTRIES, "blocks": PG_VERIFY_ENTRIES // VERIFY_BLOCK},
        t,
        extra={"seconds_per_million": 1e6 * t[0]},
    )


def _naive_verify(path: Path, trusted: dict[str, Ed25519PublicKey], limit: int) -> int:
    """The baseline: the same checks, but the log root recomputed from every leaf per block."""
    storage = SQLiteStorage(path)
    storage.open(create=False)
    leaves: list[bytes] = []
    checked = 0
    try:
        with storage.read() as reader:
            prev = None
            for row in reader.blocks(0, None):
                header = json.loads(row.header)
                digest = "sha256:" + hashlib.sha256(row.header.encode()).hexdigest()
                assert row.hash == digest and (prev is None or header["prev_hash"] == prev)
                sig = json.loads(row.signatures)[0]
                assert verify_bytes(trusted[sig["key_id"]], row.header.encode(), sig["signature"])
                block = [hashlib.sha256(b"\x00" + e[3].encode()).digest()
                         for e in reader.block_entries(row.height)]  # fmt: skip
                assert hash_text(root_hash(block)) == header["merkle_root"]
                leaves.extend(block)
                assert hash_text(root_hash(leaves)) == header["log_root"]  # from scratch
                prev = digest
                checked += len(block)
                if checked >= limit:
                    break
    finally:
        storage.close()
    return checked


@benchmark("ledger")
def bench_ledger() -> list[Result]:
    out: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="smfel-bench-ledger-") as where:
        out += _append_results(f"sqlite:///{Path(where) / 'append.db'}", "sqlite")
        with _postgres() as schema:
            if schema is not None:
                out += _append_results(schema("append"), "postgresql")
                out.append(_verify_postgres(schema("verify")))

        key = Ed25519PrivateKey.generate()
        path = Path(where) / "large.db"
        build_s = _build_large(path, key)
        trusted = {key_id(key): key.public_key()}
        with Ledger.open(f"sqlite:///{path}", create=False) as ledger:
            cpu0 = time.process_time()
            report = ledger.verify(trusted, 1)
            cpu_s = time.process_time() - cpu0  # robust to other processes on the machine
            assert report.ok and report.entries == VERIFY_ENTRIES, report
            t = time_per_call(lambda: ledger.verify(trusted, 1), number=1, repeat=3)
        out.append(
            Result(
                "ledger.verify.sqlite",
                {"entries": VERIFY_ENTRIES, "blocks": VERIFY_ENTRIES // VERIFY_BLOCK},
                *t,
                "s",
                extra={
                    "target_s": 10.0,
                    "cpu_s": cpu_s,
                    "entries_per_s": VERIFY_ENTRIES / t[0],
                    "build_entries_per_s": VERIFY_ENTRIES / build_s,
                    "database_bytes": path.stat().st_size,
                },
            )
        )
        out += _proof_results(path)
        tn = time_per_call(
            lambda: _naive_verify(path, trusted, BASELINE_ENTRIES), number=1, repeat=1,
            per=BASELINE_ENTRIES,
        )  # fmt: skip
        out.append(
            _rate(
                "ledger.verify.sqlite.root_from_scratch",
                {"entries": BASELINE_ENTRIES, "blocks": BASELINE_ENTRIES // VERIFY_BLOCK},
                tn,
                baseline="log root recomputed from all leaves at every block",
                extra={"frontier_entries_per_s": VERIFY_ENTRIES / t[0]},
            )
        )
    return out
