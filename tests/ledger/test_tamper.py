"""Editing the database behind the ledger's back makes ``verify`` fail at the first bad height.

Each case alters, drops, reorders or inserts a block or an entry with plain SQL on a real SQLite
file and a real PostgreSQL database, as someone with access to the database would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from smfel.agent.keys import Ed25519PrivateKey
from smfel.aggregator.ledger import Checkpoint, Ledger
from smfel.aggregator.ledger.merkle import Frontier, leaf_hash
from tests.ledger.conftest import Backend

HEIGHTS = 6  # blocks 0..5; the cases touch block 2 (the middle) or block 5 (the head)


def build(backend: Backend, key: Ed25519PrivateKey) -> Checkpoint:
    with Ledger.open(backend.url, signing_keys=[key]) as ledger:
        ledger.append_key_event("enrol", "node-0", "ed25519:" + "0" * 32)
        for r in range(1, HEIGHTS):
            ledger.append_round(
                r,
                "exact",
                accepted=[(f"node-{i}", f"sha256:{r:032x}{i:032x}", 1.0 + i) for i in range(4)],
                rejected=[("node-9", f"sha256:{r:064x}", "replayed_nonce")],
                reputation={"node-0": 0.9},
                global_model_hash=f"sha256:{r:064x}",
            )
        return ledger.checkpoint()


def swap_entries_data(b: Backend) -> None:
    rows = b.sql(
        "SELECT log_index, data, leaf_hash FROM entries WHERE height = 2 ORDER BY position"
    )
    (i0, d0, l0), (i1, d1, l1) = rows[0], rows[1]
    b.sql("UPDATE entries SET data = ?, leaf_hash = ? WHERE log_index = ?", [d1, l1, i0])
    b.sql("UPDATE entries SET data = ?, leaf_hash = ? WHERE log_index = ?", [d0, l0, i1])


def rewrite_entry_with_its_leaf(b: Backend) -> None:
    (index, data) = b.sql("SELECT log_index, data FROM entries WHERE height = 2 AND position = 1")[
        0
    ]
    data = data.replace('"weight":2.0', '"weight":200.0')
    b.sql("UPDATE entries SET data = ?, leaf_hash = ? WHERE log_index = ?",
          [data, leaf_hash(data.encode()), index])  # fmt: skip


def shift_heights_up_from(b: Backend, height: int) -> object:
    # two steps, so that the primary key is never violated halfway
    b.sql("UPDATE blocks SET height = height + 1000 WHERE height >= ?", [height])
    return b.sql("UPDATE blocks SET height = height - 999 WHERE height >= 1000")


def insert_block_copy(b: Backend, source: int, height: int) -> object:
    return b.sql("INSERT INTO blocks (height, hash, header, signatures)"
          " SELECT ?, hash, header, signatures FROM blocks WHERE height = ?", [height, source])  # fmt: skip


def swap_blocks(b: Backend, x: int, y: int) -> None:
    b.sql("UPDATE blocks SET height = -7 WHERE height = ?", [x])
    b.sql("UPDATE blocks SET height = ? WHERE height = ?", [x, y])
    b.sql("UPDATE blocks SET height = ? WHERE height = -7", [y])


def alter_header_and_rehash(b: Backend) -> None:
    header = b.sql("SELECT header FROM blocks WHERE height = 2")[0][0]
    forged = header.replace('"strategy":"exact"', '"strategy":"fedavg"')
    digest = "sha256:" + hashlib.sha256(forged.encode()).hexdigest()
    b.sql("UPDATE blocks SET header = ?, hash = ? WHERE height = 2", [forged, digest])


Tamper = Callable[[Backend], object]

CASES: dict[str, tuple[Tamper, int]] = {
    # altered
    "entry data": (lambda b: b.sql(
        "UPDATE entries SET data = replace(data, 'replayed_nonce', 'ok') WHERE height = 2"), 2),
    "entry data and its leaf hash": (rewrite_entry_with_its_leaf, 2),
    "entry leaf hash": (lambda b: b.sql(
        "UPDATE entries SET leaf_hash = ? WHERE height = 2 AND position = 0", [b"\x00" * 32]), 2),
    "block header": (lambda b: b.sql(
        "UPDATE blocks SET header = replace(header, '\"round\":2', '\"round\":7') WHERE height = 2"), 2),
    "block header, rehashed": (alter_header_and_rehash, 2),
    "block hash": (lambda b: b.sql(
        "UPDATE blocks SET hash = ? WHERE height = 2", ["sha256:" + "1" * 64]), 2),
    "block signature": (lambda b: b.sql(
        "UPDATE blocks SET signatures = (SELECT signatures FROM blocks WHERE height = 3)"
        " WHERE height = 2"), 2),
    "head block timestamp": (lambda b: b.sql(
        "UPDATE blocks SET header = replace(header, '\"timestamp\":\"2', '\"timestamp\":\"1')"
        " WHERE height = 5"), 5),
    # dropped
    "block in the middle": (lambda b: b.sql("DELETE FROM blocks WHERE height = 2"), 2),
    "block and its entries": (lambda b: (
        b.sql("DELETE FROM blocks WHERE height = 2"), b.sql("DELETE FROM entries WHERE height = 2")), 2),
    "head block and its entries": (lambda b: (
        b.sql("DELETE FROM blocks WHERE height = 5"), b.sql("DELETE FROM entries WHERE height = 5")), 5),
    "first block": (lambda b: b.sql("DELETE FROM blocks WHERE height = 0"), 0),
    "entry": (lambda b: b.sql("DELETE FROM entries WHERE height = 2 AND position = 1"), 2),
    "last entry of the head block": (lambda b: b.sql(
        "DELETE FROM entries WHERE log_index = (SELECT max(log_index) FROM entries)"), 5),
    "head row": (lambda b: b.sql("DELETE FROM ledger_head"), 5),
    # reordered
    "two blocks": (lambda b: swap_blocks(b, 2, 3), 2),
    "two entries (positions)": (lambda b: (
        b.sql("UPDATE entries SET position = 99 WHERE height = 2 AND position = 0"),
        b.sql("UPDATE entries SET position = 0 WHERE height = 2 AND position = 1"),
        b.sql("UPDATE entries SET position = 1 WHERE height = 2 AND position = 99")), 2),
    "two entries (contents)": (swap_entries_data, 2),
    "entry moved to the previous block": (lambda b: b.sql(
        "UPDATE entries SET height = 2, position = 7 WHERE height = 3 AND position = 0"), 2),
    # inserted
    "block in the middle, later ones shifted": (lambda b: (
        shift_heights_up_from(b, 3), insert_block_copy(b, 2, 3)), 3),
    "block after the head": (lambda b: insert_block_copy(b, 5, 6), 6),
    "entry in a block": (lambda b: b.sql(
        "INSERT INTO entries (log_index, height, position, data, leaf_hash)"
        " SELECT 10000, height, 7, data, leaf_hash FROM entries WHERE height = 2 AND position = 0"), 2),
    # values of the wrong type
    "entry data as a number": (lambda b: b.sql(
        "UPDATE entries SET data = 42 WHERE height = 2 AND position = 3"), 2),
    "signatures as a number": (lambda b: b.sql(
        "UPDATE blocks SET signatures = 7 WHERE height = 2"), 2),
    "entry without a block": (lambda b: b.sql(
        "INSERT INTO entries (log_index, height, position, data, leaf_hash)"
        " SELECT 10000, 9, 0, data, leaf_hash FROM entries WHERE log_index = 0"), 9),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_is_detected_at_the_first_bad_height(
    backend: Backend, keys: list[Ed25519PrivateKey], case: str
) -> None:
    tamper, bad_height = CASES[case]
    build(backend, keys[0])
    trusted = [keys[0].public_key()]
    with Ledger.open(backend.url) as ledger:
        assert ledger.verify(trusted).ok
    tamper(backend)
    with Ledger.open(backend.url) as ledger:
        report = ledger.verify(trusted)
    assert not report.ok
    assert report.first_bad_height == bad_height, report.reason
    assert report.reason
    if case != "head row":  # (the blocks are all good; the row naming the head is gone)
        # everything below the bad height still verified
        assert report.verified.height == min(bad_height, HEIGHTS) - 1


def test_values_sqlite_would_store_in_any_column_are_reported(
    tmp_path: Path, keys: list[Ed25519PrivateKey]
) -> None:
    """SQLite does not enforce column types; text in an integer column is a finding, not a crash."""
    path = tmp_path / "ledger.db"
    backend = Backend("sqlite", f"sqlite:///{path}", path)
    build(backend, keys[0])
    backend.sql("UPDATE entries SET height = 'two' WHERE height = 2 AND position = 3")
    with Ledger.open(backend.url) as ledger:
        report = ledger.verify([keys[0].public_key()])
    assert not report.ok
    assert report.first_bad_height == 2, report.reason


def test_truncation_with_a_rewound_head_needs_a_witness(
    backend: Backend, keys: list[Ed25519PrivateKey]
) -> None:
    """Dropping the last block *and* rewinding the head row leaves a valid shorter chain; only a
    checkpoint kept outside the database (as devices keep them) reveals it."""
    published = build(backend, keys[0])
    earlier = backend.sql("SELECT height, hash, log_size, frontier FROM ledger_head")[0]
    with Ledger.open(backend.url, signing_keys=[keys[0]]) as ledger:
        ledger.append_round(HEIGHTS, "exact", accepted=[("node-1", "sha256:" + "e" * 64, 1.0)])
        witnessed = ledger.checkpoint()
    backend.sql("DELETE FROM entries WHERE height = ?", [HEIGHTS])
    backend.sql("DELETE FROM blocks WHERE height = ?", [HEIGHTS])
    backend.sql("UPDATE ledger_head SET height = ?, hash = ?, log_size = ?, frontier = ?",
                list(earlier))  # fmt: skip
    trusted = [keys[0].public_key()]
    with Ledger.open(backend.url) as ledger:
        assert ledger.verify(trusted).ok
        assert ledger.verify(trusted, checkpoint=published).ok
        report = ledger.verify(trusted, checkpoint=witnessed)
    assert not report.ok
    assert report.first_bad_height == HEIGHTS
    assert "trusted checkpoint" in (report.reason or "")


def test_a_rewritten_history_differs_from_the_witnessed_checkpoint(
    backend: Backend, keys: list[Ed25519PrivateKey]
) -> None:
    """Even a forger holding the validator key cannot rewrite a block a witness has seen."""
    witnessed = build(backend, keys[0])
    backend.sql("DELETE FROM entries WHERE height >= 3")
    backend.sql("DELETE FROM blocks WHERE height >= 3")
    rows = backend.sql("SELECT height, hash FROM blocks WHERE height = 2")[0]
    log_size = backend.sql("SELECT count(*) FROM entries")[0][0]
    leaves = [bytes(r[0]) for r in backend.sql("SELECT leaf_hash FROM entries ORDER BY log_index")]
    backend.sql("UPDATE ledger_head SET height = ?, hash = ?, log_size = ?, frontier = ?",
                [rows[0], rows[1], log_size, Frontier.of(leaves).to_bytes()])  # fmt: skip
    with Ledger.open(backend.url, signing_keys=[keys[0]]) as ledger:
        for r in range(3, HEIGHTS):  # re-signed, different rounds
            ledger.append_round(r, "fedavg", accepted=[("node-1", "sha256:" + "f" * 64, 1.0)])
        trusted = [keys[0].public_key()]
        assert ledger.verify(trusted).ok
        report = ledger.verify(trusted, checkpoint=witnessed)
    assert not report.ok
    assert report.first_bad_height == witnessed.height
