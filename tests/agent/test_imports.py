"""The agent's keys never load ``cryptography`` where PyNaCl is installed, and its key files are
those of the OpenSSL command line. Both run child processes, so they are not in the emulated
device tier (which cannot start native children)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from smfel.agent import keys
from smfel.agent.keys import (
    Ed25519PrivateKey,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_pem,
    public_key_to_pem,
    verify_raw,
)
from tests.support.child import run_python

OPENSSL = shutil.which("openssl")

_CHILD = """
import sys
from pathlib import Path

import smfel.agent.daemon.service
from smfel.agent import keys
from smfel.agent.daemon.keyfiles import load_public_key, public_key_pem
from smfel.agent.keystore import KeyStore
from smfel.agent.protocol import parse_update
from tests.protocol.vectors import KEY, NOW, stats_update

state = Path(sys.argv[1])
created = KeyStore(state).load_or_create()
key = KeyStore(state).load()  # read back from its PEM file
assert key == created
(state / "issuer.pem").write_text(public_key_pem(key))
pub = load_public_key(state / "issuer.pem")
assert pub == key.public_key()
for size in (0, 11_500, keys.SODIUM_MAX_MESSAGE + 1, 700_000):
    message = bytes(range(256)) * (size // 256)
    signature = key.sign(message)
    assert keys.verify_raw(pub, message, signature), size
    assert not keys.verify_raw(pub, message + b"x", signature), size
update = stats_update(L=96)  # 100 KB of signed bytes, above the libsodium-only size
assert len(update.signed_bytes()) > keys.SODIUM_MAX_MESSAGE
assert parse_update(update.to_bytes(), public_key=KEY.public_key(), now=NOW) == update
print(keys.BACKENDS[0], sorted({m.split(".")[0] for m in sys.modules} & {"cryptography", "nacl"}))
"""


@pytest.mark.skipif("sodium" not in keys.BACKENDS, reason="PyNaCl is not installed here")
def test_the_agent_signs_and_verifies_without_importing_cryptography(tmp_path: Path) -> None:
    out = run_python(_CHILD, str(tmp_path / "state"))
    assert out.split("\n")[0] == "sodium ['nacl']"


_WITHOUT_NACL = """
import sys
sys.modules["nacl"] = None  # as on a platform without PyNaCl wheels
from smfel.agent import keys
from tests.protocol.vectors import RFC8032

assert keys.BACKENDS == ("openssl",), keys.BACKENDS
for secret, public, message, signature in RFC8032:
    key = keys.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    assert key.public_key().public_bytes_raw().hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature
    assert keys.verify_raw(key.public_key(), bytes.fromhex(message), bytes.fromhex(signature))
key = keys.Ed25519PrivateKey.generate()
assert keys.private_key_from_pem(keys.private_key_to_pem(key)) == key
message = bytes(keys.SODIUM_MAX_MESSAGE + 1)
assert keys.verify_raw(key.public_key(), message, key.sign(message))
assert not keys.verify_raw(key.public_key(), message + b"x", key.sign(message))
loaded = {name.split(".")[0] for name, module in sys.modules.items() if module is not None}
print(sorted(loaded & {"cryptography", "nacl"}))
"""


def test_without_pynacl_cryptography_does_the_work() -> None:
    out = run_python(_WITHOUT_NACL)
    assert out.split("\n")[0] == "['cryptography']"


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *args], input=data, capture_output=True, check=True, timeout=60
    ).stdout


@pytest.mark.skipif(OPENSSL is None, reason="no openssl command here")
def test_keys_and_signatures_interoperate_with_the_openssl_command(tmp_path: Path) -> None:
    message = tmp_path / "message"
    message.write_bytes(b"round 7 global model" * 100)
    # ours -> openssl: it reads our private key, derives our public key and signs alike
    ours = Ed25519PrivateKey.generate()
    (tmp_path / "ours.pem").write_bytes(private_key_to_pem(ours))
    assert _openssl("pkey", "-in", str(tmp_path / "ours.pem"), "-pubout") == public_key_to_pem(
        ours.public_key()
    )
    assert _openssl("pkey", "-in", str(tmp_path / "ours.pem")) == private_key_to_pem(ours)
    signature = _openssl(
        "pkeyutl", "-sign", "-rawin", "-inkey", str(tmp_path / "ours.pem"), "-in", str(message)
    )
    assert signature == ours.sign(message.read_bytes())
    (tmp_path / "ours.pub").write_bytes(public_key_to_pem(ours.public_key()))
    (tmp_path / "ours.sig").write_bytes(ours.sign(message.read_bytes()))
    verified = _openssl(
        "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", str(tmp_path / "ours.pub"),
        "-sigfile", str(tmp_path / "ours.sig"), "-in", str(message),
    )  # fmt: skip
    assert b"Signature Verified Successfully" in verified
    # openssl -> ours: a key it generates, its public key and its signatures
    theirs = _openssl("genpkey", "-algorithm", "ed25519")
    (tmp_path / "theirs.pem").write_bytes(theirs)
    key = private_key_from_pem(theirs)
    pub = public_key_from_pem(_openssl("pkey", "-in", str(tmp_path / "theirs.pem"), "-pubout"))
    assert pub == key.public_key()
    signature = _openssl(
        "pkeyutl", "-sign", "-rawin", "-inkey", str(tmp_path / "theirs.pem"), "-in", str(message)
    )
    assert verify_raw(pub, message.read_bytes(), signature)
    assert not verify_raw(pub, message.read_bytes() + b"x", signature)
