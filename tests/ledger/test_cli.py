"""``smfel-aggregator ledger verify|show|proof`` on real databases."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from smfel.agent.keys import Ed25519PrivateKey, public_key_raw, public_key_to_pem
from smfel.aggregator.cli import main
from smfel.aggregator.ledger import ConsistencyProof, InclusionProof, Ledger
from smfel.aggregator.ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.ledger.conftest import Backend


def make_ledger(url: str, keys: list[Ed25519PrivateKey]) -> None:
    with Ledger.open(url, signing_keys=keys) as ledger:
        ledger.append_key_event("enrol", "node-1", "ed25519:" + "1" * 32)
        for r in range(1, 4):
            ledger.append_round(
                r,
                "exact",
                accepted=[(f"node-{i}", f"sha256:{r:032x}{i:032x}", 2.0) for i in range(3)],
                rejected=[("node-7", None, "too_few_beats")],
                global_model_hash=f"sha256:{r:064x}",
            )


def pem_keys(path: Path, keys: list[Ed25519PrivateKey]) -> Path:
    path.write_bytes(b"".join(public_key_to_pem(k.public_key()) for k in keys))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["--log-level", "WARNING", "ledger", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_verify_passes_then_names_the_first_bad_height(
    backend: Backend,
    keys: list[Ed25519PrivateKey],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_ledger(backend.url, keys[:2])
    keyfile = pem_keys(tmp_path / "validators.pem", keys)
    rc, out, err = run(capsys, "verify", "--db", backend.url, "--keys", str(keyfile), "-k", "2")
    assert rc == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["signatures_checked"] is True
    assert (report["blocks"], report["entries"]) == (4, 1 + 3 * 5)

    rc, out, err = run(capsys, "verify", "--db", backend.url, "--keys", str(keyfile), "-k", "3")
    assert rc == 1
    assert json.loads(out)["first_bad_height"] == 0

    backend.sql("UPDATE entries SET data = replace(data, 'too_few_beats', 'ok') WHERE height = 2")
    rc, out, err = run(capsys, "verify", "--db", backend.url, "--keys", str(keyfile), "-k", "2")
    assert rc == 1
    assert json.loads(out)["first_bad_height"] == 2
    assert "first bad height 2" in err


def test_verify_accepts_raw_keys_and_a_witnessed_checkpoint(
    tmp_path: Path, keys: list[Ed25519PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    make_ledger(url, keys[:1])
    lines = [
        "# validators",
        base64.b64encode(public_key_raw(keys[0].public_key())).decode(),
        public_key_raw(keys[1].public_key()).hex() + "  # hex works too",
    ]
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text("\n".join(lines) + "\n")
    with Ledger.open(url, signing_keys=keys[:1]) as ledger:
        (tmp_path / "cp.json").write_text(json.dumps(ledger.signed_checkpoint()))
        ledger.append_round(9, "exact")
        (tmp_path / "later.json").write_text(json.dumps(ledger.checkpoint().to_json()))
    rc, out, _ = run(capsys, "verify", "--db", url, "--keys", str(keyfile),
                     "--checkpoint", str(tmp_path / "cp.json"))  # fmt: skip
    assert rc == 0, out
    # a checkpoint the ledger does not contain (here: from a block removed afterwards)
    with Ledger.open(url) as ledger:
        last = ledger.checkpoint()
    import sqlite3

    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute("DELETE FROM blocks WHERE height = ?", (last.height,))
    conn.execute("UPDATE ledger_head SET height = height - 1")
    conn.commit()
    conn.close()
    rc, out, _ = run(capsys, "verify", "--db", url, "--keys", str(keyfile),
                     "--checkpoint", str(tmp_path / "later.json"))  # fmt: skip
    assert rc == 1
    assert json.loads(out)["first_bad_height"] == last.height


def test_show_prints_blocks_as_json(
    tmp_path: Path, keys: list[Ed25519PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    make_ledger(url, keys[:1])
    rc, out, _ = run(capsys, "show", "--db", url)
    assert rc == 0
    doc = json.loads(out)
    assert doc["checkpoint"]["height"] == 3
    assert doc["block"]["header"]["round"] == 3
    assert doc["block"]["hash"] == doc["checkpoint"]["head_hash"]
    rc, out, _ = run(capsys, "show", "--db", url, "--height", "0")
    block = json.loads(out)["block"]
    assert block["header"]["kind"] == "key_event"
    assert block["entries"][0]["event"] == "enrol"
    assert len(block["signatures"]) == 1
    rc, _, err = run(capsys, "show", "--db", url, "--height", "10")
    assert rc != 0
    assert "no block at height 10" in err


def test_proof_prints_verifiable_proofs(
    backend: Backend, keys: list[Ed25519PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    make_ledger(backend.url, keys[:1])
    rc, out, _ = run(capsys, "proof", "--db", backend.url, "--entry", "5", "--size", "9")
    assert rc == 0
    doc = json.loads(out)
    proof = InclusionProof.from_json(doc)
    assert (proof.leaf_index, proof.tree_size) == (5, 9)
    assert (
        leaf_hash(json.dumps(doc["entry"]["entry"], sort_keys=True, separators=(",", ":")).encode())
        == proof.leaf_hash
    )
    with Ledger.open(backend.url) as ledger:
        root9 = ledger.root_at(9)
        full = ledger.checkpoint()
    assert verify_inclusion(proof.leaf_hash, 5, 9, proof.path, root9)

    rc, out, _ = run(
        capsys, "proof", "--db", backend.url, "--consistency", "3", str(full.tree_size)
    )
    assert rc == 0
    c = ConsistencyProof.from_json(json.loads(out))
    assert c.second_root == full.root
    assert verify_consistency(3, full.tree_size, c.first_root, full.root, c.path)

    rc, _, err = run(capsys, "proof", "--db", backend.url, "--entry", "500")
    assert rc != 0
    assert "entry: expected 0.." in err


def test_bad_arguments_give_clear_errors(
    tmp_path: Path, keys: list[Ed25519PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = run(capsys, "verify", "--db", f"sqlite:///{tmp_path / 'nothing.db'}")
    assert rc != 0
    assert "no ledger database" in err
    assert not (tmp_path / "nothing.db").exists()
    url = f"sqlite:///{tmp_path / 'l.db'}"
    make_ledger(url, keys[:1])
    (tmp_path / "bad.keys").write_text("not a key\n")
    rc, _, err = run(capsys, "verify", "--db", url, "--keys", str(tmp_path / "bad.keys"))
    assert rc != 0
    assert "expected a 32-byte Ed25519 key" in err


def test_console_script_exits_non_zero_on_a_tampered_ledger(
    tmp_path: Path, keys: list[Ed25519PrivateKey]
) -> None:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    make_ledger(url, keys[:1])
    import sqlite3

    conn = sqlite3.connect(tmp_path / "l.db")
    conn.execute("DELETE FROM entries WHERE height = 1 AND position = 0")
    conn.commit()
    conn.close()
    script = Path(sys.executable).parent / "smfel-aggregator"
    res = subprocess.run([str(script), "ledger", "verify", "--db", url],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert res.returncode == 1
    assert json.loads(res.stdout)["first_bad_height"] == 1
    assert "first bad height 1" in res.stderr


def test_verify_writes_nothing_so_an_emptied_ledger_is_not_repaired(
    backend: Backend, keys: list[Ed25519PrivateKey], capsys: pytest.CaptureFixture[str]
) -> None:
    make_ledger(backend.url, keys[:1])
    for table in ("entries", "blocks", "ledger_head"):
        backend.sql(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    rc, out, _ = run(capsys, "verify", "--db", backend.url)
    assert rc == 1
    assert json.loads(out)["reason"] == "the ledger_head row is missing"
    assert backend.sql("SELECT count(*) FROM ledger_head") == [(0,)]
