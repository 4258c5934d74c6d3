"""The node registry on a real SQLite file: enrol, rotate, revoke, list, events, refresh."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519 as openssl

from smfel.agent.keys import Ed25519PrivateKey, key_id, public_key_raw, public_key_to_pem
from smfel.aggregator.errors import RegistryError
from smfel.aggregator.registry import KeyEvent, Registry, parse_enrolment


def _enrolment(node: str, key: Ed25519PrivateKey | None = None) -> dict[str, str]:
    key = key or Ed25519PrivateKey.generate()
    pub = key.public_key()
    return {
        "node_id": node,
        "key_id": key_id(pub),
        "public_key": base64.b64encode(public_key_raw(pub)).decode(),
        "board": "rpi4",
    }


def test_parse_accepts_base64_hex_and_pem() -> None:
    key = Ed25519PrivateKey.generate()
    raw = public_key_raw(key.public_key())
    pem = public_key_to_pem(key.public_key()).decode()
    openssl_pem = (  # as another party writes it
        openssl.Ed25519PublicKey.from_public_bytes(raw)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    for text in (base64.b64encode(raw).decode(), raw.hex(), pem, openssl_pem):
        e = parse_enrolment({"node_id": "a", "public_key": text})
        assert e.public_key == raw
        assert e.key_id == key_id(key)
    assert parse_enrolment(json.dumps(_enrolment("b", key))).key_id == key_id(key)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ("not json", "not JSON"),
        ([1], "JSON object"),
        ({"node_id": "", "public_key": "AAAA"}, "node_id"),
        ({"node_id": "a/b", "public_key": "AAAA"}, "node_id"),
        ({"node_id": "a", "public_key": 5}, "public_key must be"),
        ({"node_id": "a", "public_key": "AAAA"}, "not an Ed25519 key"),
    ],
)
def test_parse_rejects_bad_enrolments(obj: object, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_enrolment(obj if isinstance(obj, str) else json.dumps(obj))


def test_parse_rejects_a_key_id_that_does_not_match() -> None:
    e = _enrolment("a")
    e["key_id"] = key_id(Ed25519PrivateKey.generate())
    with pytest.raises(RegistryError, match="does not match"):
        parse_enrolment(e)


def test_enrol_rotate_revoke_lifecycle_with_events(tmp_path: Path) -> None:
    events: list[KeyEvent] = []
    k1, k2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    with Registry(tmp_path / "registry.sqlite", on_event=events.append) as reg:
        reg.add(parse_enrolment(_enrolment("dev-1", k1)))
        reg.add(parse_enrolment(_enrolment("dev-2")))
        rec = reg.lookup(key_id(k1))
        assert rec is not None
        assert rec.usable
        assert rec.node_id == "dev-1"
        reg.rotate(parse_enrolment(_enrolment("dev-1", k2)))
        old, new = reg.lookup(key_id(k1)), reg.lookup(key_id(k2))
        assert old is not None
        assert new is not None
        assert old.status == "rotated"
        assert not old.usable
        assert new.usable
        reg.revoke("dev-1", reason="lost")
        new = reg.lookup(key_id(k2))
        assert new is not None
        assert not new.usable
        assert reg.lookup(key_id(Ed25519PrivateKey.generate())) is None
        listing = {n.node_id: n for n in reg.nodes()}
        assert listing["dev-1"].status == "revoked"
        assert listing["dev-2"].status == "active"
        assert listing["dev-2"].board == "rpi4"
    assert [(e.event, e.node_id) for e in events] == [
        ("enrol", "dev-1"),
        ("enrol", "dev-2"),
        ("rotate", "dev-1"),
        ("revoke", "dev-1"),
    ]
    assert events[2].previous_key_id == key_id(k1)
    assert events[3].key_id == key_id(k2)
    assert events[3].reason == "lost"


def test_refuses_duplicates_and_unknown_nodes(tmp_path: Path) -> None:
    k = Ed25519PrivateKey.generate()
    with Registry(tmp_path / "r.sqlite") as reg:
        reg.add(parse_enrolment(_enrolment("a", k)))
        with pytest.raises(RegistryError, match="already enrolled"):
            reg.add(parse_enrolment(_enrolment("a")))
        with pytest.raises(RegistryError, match="already registered"):
            reg.add(parse_enrolment(_enrolment("b", k)))
        with pytest.raises(RegistryError, match="not enrolled"):
            reg.revoke("nobody")
        reg.revoke("a")
        with pytest.raises(RegistryError, match="revoked"):
            reg.rotate(parse_enrolment(_enrolment("a")))


def test_a_failing_ledger_rolls_the_change_back(tmp_path: Path) -> None:
    def refuse(event: KeyEvent) -> None:
        raise OSError("ledger unavailable")

    with Registry(tmp_path / "r.sqlite", on_event=refuse) as reg:
        with pytest.raises(OSError, match="ledger unavailable"):
            reg.add(parse_enrolment(_enrolment("a")))
        assert reg.nodes() == []


def test_a_revocation_by_another_connection_is_seen_at_once(tmp_path: Path) -> None:
    k = Ed25519PrivateKey.generate()
    path = tmp_path / "r.sqlite"
    with Registry(path) as service, Registry(path) as cli:
        cli.add(parse_enrolment(_enrolment("a", k)))
        first = service.lookup(key_id(k))
        assert first is not None
        assert first.usable
        cli.revoke("a")
        after = service.lookup(key_id(k))
        assert after is not None
        assert not after.usable
