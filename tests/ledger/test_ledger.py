"""The ledger facade on real SQLite and PostgreSQL: appending, reading, proofs, signatures."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.aggregator.ledger import (
    Checkpoint,
    Entry,
    Ledger,
    LedgerInputError,
    LedgerNotFoundError,
    LedgerStorageError,
    LogVerifier,
)
from smfel.aggregator.ledger.block import GENESIS_HASH, BlockHeader
from smfel.aggregator.ledger.merkle import (
    EMPTY_ROOT,
    hash_text,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger.conftest import Backend


def fill(ledger: Ledger, rounds: int = 4) -> None:
    """A key event, then rounds with a varying number of accepted and rejected updates."""
    ledger.append_key_event("enrol", "node-a", "ed25519:" + "a" * 32, public_key="cHVi")
    for r in range(1, rounds + 1):
        ledger.append_round(
            r,
            "exact",
            accepted=[(f"node-{i}", f"sha256:{i:064x}", float(10 * i)) for i in range(r + 2)],
            rejected=[("node-x", None, "bad_signature")] if r % 2 else [],
            reputation={"node-0": 0.5, "node-1": 0.25},
            global_model_hash=f"sha256:{r:064x}",
        )


def test_blocks_chain_and_record_the_round(backend: Backend, keys: list[Ed25519PrivateKey]) -> None:
    with Ledger.open(backend.url, signing_keys=keys[:1]) as ledger:
        assert ledger.head() is None
        assert ledger.last_round() is None
        empty = ledger.checkpoint()
        assert empty == Checkpoint(-1, GENESIS_HASH, 0, hash_text(EMPTY_ROOT))
        fill(ledger)
        blocks = ledger.blocks()
        assert [b.height for b in blocks] == [0, 1, 2, 3, 4]
        assert blocks[0].header.prev_hash == GENESIS_HASH
        for prev, block in itertools.pairwise(blocks):
            assert block.header.prev_hash == prev.hash
        key_block, round1 = blocks[0], blocks[1]
        assert key_block.header.kind == "key_event"
        assert key_block.entries[0].fields == {
            "type": "key_event",
            "event": "enrol",
            "node": "node-a",
            "key_id": "ed25519:" + "a" * 32,
            "public_key": "cHVi",
        }
        assert (round1.header.kind, round1.header.round, round1.header.strategy) == (
            "round",
            1,
            "exact",
        )
        types = [e.type for e in round1.entries]
        assert types == ["accepted"] * 3 + ["rejected", "reputation", "global_model"]
        assert round1.entries[1].fields["weight"] == 10.0
        assert round1.entries[3].fields == {
            "type": "rejected",
            "node": "node-x",
            "update_hash": None,
            "reason": "bad_signature",
        }
        assert round1.header.merkle_root == hash_text(
            root_hash([e.leaf_hash for e in round1.entries])
        )
        all_leaves = [e.leaf_hash for b in blocks for e in b.entries]
        cp = ledger.checkpoint()
        assert cp == (4, blocks[-1].hash, len(all_leaves), hash_text(root_hash(all_leaves)))
        assert ledger.block(1) == round1
        assert ledger.headers(1, 3) == [round1.header, blocks[2].header]
        assert ledger.last_round() == 4
        assert ledger.head() == blocks[-1]
        assert ledger.verify([k.public_key() for k in keys], 1).ok


def test_reopening_continues_the_same_chain(
    backend: Backend, keys: list[Ed25519PrivateKey]
) -> None:
    with Ledger.open(backend.url, signing_keys=keys[:1]) as ledger:
        fill(ledger, rounds=2)
        before = ledger.checkpoint()
    with Ledger.open(backend.url, signing_keys=keys[:1]) as ledger:
        assert ledger.checkpoint() == before
        block = ledger.append_round(3, "fedavg", accepted=[("n", "sha256:" + "1" * 64, 1.0)])
        assert block.header.prev_hash == before.head_hash
        assert block.header.log_size == before.tree_size + 1
        report = ledger.verify([keys[0].public_key()])
        assert report.ok, report.reason
        assert report.blocks == 4
        assert report.entries == before.tree_size + 1


def test_a_damaged_head_frontier_is_rebuilt_from_the_entries(
    backend: Backend, keys: list[Ed25519PrivateKey]
) -> None:
    with Ledger.open(backend.url, signing_keys=keys[:1]) as ledger:
        fill(ledger, rounds=2)
    backend.sql("UPDATE ledger_head SET frontier = ?", [b"\x00" * 64])
    with Ledger.open(backend.url, signing_keys=keys[:1]) as ledger:
        ledger.append_round(3, "exact", accepted=[("n", "sha256:" + "2" * 64, 1.0)])
        assert ledger.verify([keys[0].public_key()]).ok


def test_k_of_n_validator_signatures(backend: Backend, keys: list[Ed25519PrivateKey]) -> None:
    trusted = [k.public_key() for k in keys]
    with Ledger.open(backend.url, signing_keys=keys[:2]) as ledger:
        fill(ledger, rounds=1)
        sigs = ledger.head().signatures  # type: ignore[union-attr]
        assert [s.key_id for s in sigs] == [key_id(k) for k in keys[:2]]
        assert ledger.verify(trusted, k=2).ok
        report = ledger.verify(trusted, k=3)
        assert not report.ok
        assert report.first_bad_height == 0
        assert report.reason == "2 valid trusted signature(s), 3 required"
        # signatures by keys outside the trusted set do not count
        assert not ledger.verify(trusted[1:], k=2).ok
        with pytest.raises(LedgerInputError, match="only 3 keys trusted"):
            ledger.verify(trusted, k=4)
        # without keys only structure and hashes are checked
        unsigned = ledger.verify(None)
        assert unsigned.ok and not unsigned.signatures_checked


def test_duplicate_signatures_by_one_validator_count_once(
    backend: Backend, keys: list[Ed25519PrivateKey]
) -> None:
    with Ledger.open(backend.url, signing_keys=[keys[0], keys[0]]) as ledger:
        fill(ledger, rounds=1)
        report = ledger.verify([k.public_key() for k in keys], k=2)
        assert not report.ok
        assert report.reason == "1 valid trusted signature(s), 2 required"


def test_proofs_from_the_ledger_verify(backend: Backend, keys: list[Ed25519PrivateKey]) -> None:
    with Ledger.open(backend.url, signing_keys=keys[:1]) as ledger:
        fill(ledger, rounds=3)
        size = ledger.checkpoint().tree_size
        leaves = [e.entry.leaf_hash for e in ledger.entries()]
        assert len(leaves) == size
        for size_at in (1, 5, size):
            root = ledger.root_at(size_at)
            assert root == root_hash(leaves[:size_at])
            for i in range(size_at):
                proof = ledger.inclusion_proof(i, size_at)
                assert proof.root == root
                assert verify_inclusion(leaves[i], i, size_at, proof.path, root)
            for old in range(size_at + 1):
                c = ledger.consistency_proof(old, size_at)
                assert verify_consistency(old, size_at, root_hash(leaves[:old]), root, c.path)
        entry = ledger.entry(3)
        assert (entry.log_index, entry.height) == (3, 1)
        assert entry.entry.leaf_hash == leaves[3]
        with pytest.raises(LedgerInputError, match="entry"):
            ledger.inclusion_proof(size)
        with pytest.raises(LedgerInputError, match="tree_size"):
            ledger.inclusion_proof(0, size + 1)
        with pytest.raises(LedgerInputError, match="old_size"):
            ledger.consistency_proof(size, size - 1)
        with pytest.raises(LedgerNotFoundError, match="no entry"):
            ledger.entry(size)
        with pytest.raises(LedgerNotFoundError, match="no block at height 99"):
            ledger.block(99)


def test_signed_checkpoint_is_accepted_by_a_witness(
    backend: Backend, keys: list[Ed25519PrivateKey]
) -> None:
    with Ledger.open(backend.url, signing_keys=keys[:2]) as ledger:
        fill(ledger, rounds=1)
        witness = LogVerifier([k.public_key() for k in keys], k=2)
        first = witness.accept(ledger.signed_checkpoint())
        assert first == ledger.checkpoint()
        fill(ledger, rounds=2)
        second = witness.accept(
            ledger.signed_checkpoint(), ledger.consistency_proof(first.tree_size)
        )
        assert second == ledger.checkpoint()
        entry = ledger.entry(second.tree_size - 1)
        witness.check_inclusion(entry.entry, ledger.inclusion_proof(entry.log_index))


def test_bad_input_is_refused_with_a_clear_error(
    tmp_path: Path, keys: list[Ed25519PrivateKey]
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Ledger.open(url, signing_keys=keys[:1]) as ledger:
        with pytest.raises(LedgerInputError, match="weight: expected a finite number"):
            ledger.append_round(1, "exact", accepted=[("n", "sha256:x", float("nan"))])
        with pytest.raises(LedgerInputError, match="node: expected a non-empty string"):
            ledger.append_round(1, "exact", accepted=[("", "sha256:x", 1.0)])
        with pytest.raises(LedgerInputError, match="reason: expected a non-empty string"):
            ledger.append_round(1, "exact", rejected=[("n", None, "")])
        with pytest.raises(LedgerInputError, match="event: expected one of"):
            ledger.append_key_event("steal", "n", "ed25519:00")
        with pytest.raises(LedgerInputError, match="round: expected an integer >= 0"):
            ledger.append_round(-1, "exact")
        assert ledger.head() is None  # nothing half-written
    with Ledger.open(url) as reader, pytest.raises(LedgerInputError, match="validator key"):
        reader.append_round(1, "exact")
    with pytest.raises(LedgerInputError, match="expected a sqlite:///path or postgresql"):
        Ledger.open("mysql://x/y")
    with pytest.raises(LedgerStorageError, match="no ledger database"):
        Ledger.open(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(LedgerStorageError, match="not a ledger database"):
        Ledger.open(f"sqlite:///{other}", create=False)
    with pytest.raises(LedgerInputError, match="canonical JSON"):
        Entry(b'{"type": "accepted"}')


def test_sqlite_is_wal_with_synchronous_full(tmp_path: Path, keys: list[Ed25519PrivateKey]) -> None:
    path = tmp_path / "l.db"
    with Ledger.open(f"sqlite:///{path}", signing_keys=keys[:1]) as ledger:
        fill(ledger, rounds=1)
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.close()
        storage = ledger._storage
        assert storage._connection().execute("PRAGMA synchronous").fetchone() == (2,)  # type: ignore[attr-defined]


def test_header_is_stored_as_the_signed_canonical_bytes(
    backend: Backend, keys: list[Ed25519PrivateKey]
) -> None:
    with Ledger.open(backend.url, signing_keys=keys[:1]) as ledger:
        fill(ledger, rounds=1)
        head = ledger.head()
        assert head is not None
    stored = backend.sql("SELECT header, hash, signatures FROM blocks WHERE height = 1")[0]
    assert BlockHeader.parse(stored[0]) == head.header
    assert stored[1] == head.hash
    assert json.loads(stored[2]) == [s.to_json() for s in head.signatures]
    leaf = backend.sql("SELECT data, leaf_hash FROM entries WHERE log_index = 0")[0]
    assert bytes(leaf[1]) == leaf_hash(leaf[0].encode())


def test_several_writers_share_one_chain(backend: Backend, keys: list[Ed25519PrivateKey]) -> None:
    """Aggregator workers with their own connections append to one ledger without forking it."""
    writers = [Ledger.open(backend.url, signing_keys=keys[:1]) for _ in range(3)]
    errors: list[BaseException] = []

    def work(ledger: Ledger, worker: int) -> None:
        try:
            for r in range(5):
                ledger.append_round(worker * 100 + r, "exact",
                                    accepted=[(f"w{worker}", "sha256:" + "c" * 64, 1.0)] * 3)  # fmt: skip
        except BaseException as err:  # collected and re-raised in the test thread
            errors.append(err)

    threads = [
        threading.Thread(target=work, args=(w, i), name=f"writer-{i}")
        for i, w in enumerate(writers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for w in writers:
        w.close()
    assert not errors
    with Ledger.open(backend.url) as ledger:
        report = ledger.verify([keys[0].public_key()])
        assert report.ok, report.reason
        assert (report.blocks, report.entries) == (15, 45)
        rounds = sorted(h.round for h in ledger.headers() if h.round is not None)
        assert rounds == sorted(w * 100 + r for w in range(3) for r in range(5))


def test_connection_errors_do_not_reveal_the_password() -> None:
    with pytest.raises(LedgerStorageError, match="cannot connect") as caught:
        Ledger.open("postgresql://auditor:s3cret-pw@127.0.0.1:1/ledger?connect_timeout=5")
    assert "s3cret-pw" not in str(caught.value)
    assert "auditor:***@127.0.0.1:1" in str(caught.value)


def test_proofs_in_a_log_larger_than_the_cached_subtrees(
    backend: Backend, keys: list[Ed25519PrivateKey]
) -> None:
    with Ledger.open(backend.url, signing_keys=keys[:1]) as ledger:
        for r, count in enumerate((1000, 100, 37)):
            ledger.append_round(r, "exact", accepted=[(f"n{i}", "sha256:" + "d" * 64, float(i))
                                                      for i in range(count)])  # fmt: skip
        leaves = [e.entry.leaf_hash for e in ledger.entries()]
        n = len(leaves)
        assert n == 1137 == ledger.checkpoint().tree_size
        root = root_hash(leaves)
        assert hash_text(root) == ledger.checkpoint().merkle_root
        for _ in range(2):  # the second time through the subtree cache
            for i in (0, 5, 1023, 1024, 1100, n - 1):
                proof = ledger.inclusion_proof(i)
                assert proof.root == root
                assert verify_inclusion(leaves[i], i, n, proof.path, root)
            for old in (1, 1024, 1025, 1100, n):
                c = ledger.consistency_proof(old)
                assert c.first_root == root_hash(leaves[:old]) and c.second_root == root
                assert verify_consistency(old, n, c.first_root, root, c.path)
            assert ledger.root_at(1100) == root_hash(leaves[:1100])
    backend.sql("DELETE FROM entries WHERE log_index = 700")
    with Ledger.open(backend.url) as ledger, pytest.raises(LedgerStorageError, match="leaf hashes"):
        ledger.inclusion_proof(3)
