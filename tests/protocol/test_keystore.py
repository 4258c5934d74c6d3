"""Device keys on disk: modes, systemd credentials, enrolment export, rotation and recovery."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from smfel.agent.keys import key_id
from smfel.agent.keystore import Enrolment, KeyStore, KeyStoreError
from smfel.agent.protocol import parse_rotation

pytestmark = pytest.mark.device


def test_generates_a_private_key_only_the_owner_can_read(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", environ={})
    assert not (tmp_path / "keys").exists()  # the constructor does no I/O
    key = store.load_or_create()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "node.key").stat().st_mode) == 0o600
    assert key_id(KeyStore(tmp_path / "keys", environ={}).load()) == key_id(key)


def test_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, environ={})
    store.load_or_create()
    (tmp_path / "node.key").chmod(0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        store.load()


def test_missing_or_garbage_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="no key"):
        KeyStore(tmp_path, environ={}).load()
    fd = os.open(tmp_path / "node.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not a key")
    os.close(fd)
    with pytest.raises(KeyStoreError, match="PEM"):
        KeyStore(tmp_path, environ={}).load()


def test_reads_a_systemd_credential_and_refuses_to_rotate_it(tmp_path: Path) -> None:
    KeyStore(tmp_path / "provisioned", environ={}).load_or_create()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "smfel-node-key").write_bytes((tmp_path / "provisioned" / "node.key").read_bytes())
    store = KeyStore(tmp_path / "state", environ={"CREDENTIALS_DIRECTORY": str(creds)})
    expected = key_id(KeyStore(tmp_path / "provisioned", environ={}).load())
    assert key_id(store.load()) == expected
    assert store.read_only
    with pytest.raises(KeyStoreError, match="credential"):
        store.rotate("n1")
    assert not (tmp_path / "state").exists()


def test_enrolment_export_round_trips(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, environ={})
    record = store.export_public("ward3-bed12")
    obj = json.loads(record.to_json())
    assert obj["node_id"] == "ward3-bed12" and obj["algorithm"] == "ed25519"
    again = Enrolment.from_dict(obj)
    assert key_id(again.key()) == key_id(store.load())
    obj["key_id"] = "ed25519:" + "0" * 32
    with pytest.raises(ValueError, match="not the id"):
        Enrolment.from_dict(obj)


def test_rotation_keeps_the_previous_key_until_acknowledged(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, environ={})
    old = store.load_or_create()
    statement = store.rotate("n1")
    new = store.load()
    assert key_id(new) != key_id(old)
    prev = store.previous()
    assert prev is not None and key_id(prev) == key_id(old)
    parsed = parse_rotation(statement.to_bytes(), public_key=old.public_key())
    assert parsed.new_key_id == key_id(new) and parsed.previous_key_id == key_id(old)
    with pytest.raises(KeyStoreError, match="not acknowledged"):
        store.rotate("n1")
    again = store.rotation_statement("n1")
    assert again is not None and again.new_key_id == key_id(new)
    store.acknowledge_rotation()
    assert store.previous() is None and store.rotation_statement("n1") is None
    assert stat.S_IMODE((tmp_path / "node.key").stat().st_mode) == 0o600


def test_interrupted_rotation_is_finished_or_undone(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, environ={})
    old = store.load_or_create()
    pem = (tmp_path / "node.key").read_bytes()
    other = KeyStore(tmp_path / "x", environ={}).load_or_create()
    # crash after writing next.key only: undone, the old key stays
    (tmp_path / "next.key").write_bytes((tmp_path / "x" / "node.key").read_bytes())
    assert key_id(store.load()) == key_id(old)
    assert not (tmp_path / "next.key").exists()
    # crash after saving previous.key: finished, the new key is current
    (tmp_path / "next.key").write_bytes((tmp_path / "x" / "node.key").read_bytes())
    (tmp_path / "next.key").chmod(0o600)
    (tmp_path / "previous.key").write_bytes(pem)
    (tmp_path / "previous.key").chmod(0o600)
    assert key_id(store.load()) == key_id(other)
    prev = store.previous()
    assert prev is not None and key_id(prev) == key_id(old)
