"""The key classes and PEM of ``smfel.agent.keys`` against RFC 8032 and ``cryptography``.

The module does its own PEM and holds keys in its own classes (so a device never loads
``cryptography``); these tests hold both to what OpenSSL does: the RFC 8032 vectors, the same
signatures from either library, PEM byte for byte as ``cryptography`` writes it and read from
it, and clear refusals of every other kind of file. ``cryptography`` is used on purpose here, as
the other party.
"""

from __future__ import annotations

import base64
import copy
import functools
import pickle
import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa, x25519
from cryptography.hazmat.primitives.asymmetric import ed25519 as openssl

from smfel.agent import keys
from smfel.agent.keys import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    InvalidSignature,
    key_id,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_pem,
    public_key_to_pem,
    sign_raw,
    verify_raw,
)
from tests.protocol.vectors import RFC8032

pytestmark = pytest.mark.device

PKCS8 = serialization.PrivateFormat.PKCS8
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
PEM = serialization.Encoding.PEM
#: RFC 8410, section 10.3: a OneAsymmetricKey with an attribute and the public key appended.
RFC8410_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MHICAQEwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
oB8wHQYKKoZIhvcNAQkJFDEPDA1DdXJkbGUgQ2hhaXJzgSEAGb9ECWmEzf6FQbrB
Z9w7lshQhqowtrbLDFw4rXAxZuE=
-----END PRIVATE KEY-----
"""
RFC8410_PUBLIC = "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1"
RFC8410_PUBLIC_RAW = bytes.fromhex(RFC8410_PUBLIC)


def _openssl_private(key: Ed25519PrivateKey) -> openssl.Ed25519PrivateKey:
    return openssl.Ed25519PrivateKey.from_private_bytes(key.private_bytes_raw())


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.encodebytes(der).replace(b"\n", b"")
    lines = b"\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), lines, label.encode())


def _der(pem: bytes) -> bytes:
    return base64.b64decode(b"".join(pem.strip().splitlines()[1:-1]))


@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC8032)
def test_rfc8032_vectors_with_every_backend(
    secret: str, public: str, message: str, signature: str
) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    pub = key.public_key()
    assert pub.public_bytes_raw().hex() == public
    assert key_id(key) == key_id(pub)
    msg, sig = bytes.fromhex(message), bytes.fromhex(signature)
    assert key.sign(msg).hex() == signature
    for backend in keys.BACKENDS:
        assert sign_raw(key, msg, backend=backend) == sig
        assert verify_raw(pub, msg, sig, backend=backend)
        assert not verify_raw(pub, msg + b"x", sig, backend=backend)
    pub.verify(sig, msg)
    with pytest.raises(InvalidSignature):
        pub.verify(sig, msg + b"x")


@pytest.mark.parametrize("size", [0, 700, keys.SODIUM_MAX_MESSAGE, keys.SODIUM_MAX_MESSAGE + 1])
def test_signatures_are_those_of_cryptography_both_ways(size: int) -> None:
    rng = random.Random(size)
    for _ in range(5):
        ours = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        theirs = _openssl_private(ours)
        message = rng.randbytes(size)
        assert ours.public_key().public_bytes_raw() == theirs.public_key().public_bytes_raw()
        signature = ours.sign(message)
        assert signature == theirs.sign(message)  # Ed25519 signing is deterministic
        theirs.public_key().verify(signature, message)
        assert verify_raw(ours.public_key(), message, theirs.sign(message))


def test_large_messages_go_to_openssl_only_when_asked() -> None:
    small, large = keys.SODIUM_MAX_MESSAGE, keys.SODIUM_MAX_MESSAGE + 1
    try:
        assert keys.use_openssl_for_large_messages(False) == keys.BACKENDS[0]
        assert keys.backend_for(small) == keys.backend_for(large) == keys.BACKENDS[0]
        assert keys.use_openssl_for_large_messages() == "openssl"
        assert keys.backend_for(small) == keys.BACKENDS[0]
        assert keys.backend_for(large) == "openssl"
        key = Ed25519PrivateKey.from_private_bytes(bytes(32))
        message = bytes(large)
        assert verify_raw(key.public_key(), message, key.sign(message))
    finally:
        keys.use_openssl_for_large_messages(False)


def test_keys_are_immutable_hashable_values() -> None:
    seed = bytes(range(32))
    a, b = Ed25519PrivateKey.from_private_bytes(seed), Ed25519PrivateKey.from_private_bytes(seed)
    other = Ed25519PrivateKey.generate()
    assert a == b and a != other and hash(a) == hash(b)
    assert a.public_key() == b.public_key() != other.public_key()
    assert {a.public_key(), b.public_key(), other.public_key()} == {
        a.public_key(),
        other.public_key(),
    }
    assert a.public_key() == Ed25519PublicKey.from_public_bytes(a.public_key().public_bytes_raw())
    with pytest.raises(AttributeError, match="immutable"):
        a._seed = bytes(32)
    with pytest.raises(AttributeError, match="immutable"):
        a.public_key()._raw = bytes(32)
    assert copy.deepcopy(a) is a
    pub = a.public_key()
    assert pickle.loads(pickle.dumps(pub)) == pub  # noqa: S301 (our own bytes)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(a)
    assert seed.hex() not in repr(a) and key_id(a) in repr(a)
    assert a != a.public_key() and a.public_key() != a.public_key().public_bytes_raw()


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_raw_keys_must_be_32_bytes(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Ed25519PrivateKey.from_private_bytes(bytes(length))
    with pytest.raises(ValueError, match="32 bytes"):
        Ed25519PublicKey.from_public_bytes(bytes(length))
    with pytest.raises(TypeError, match="bytes"):
        Ed25519PrivateKey.from_private_bytes("0" * 32)  # type: ignore[arg-type]


def test_pem_is_written_as_openssl_writes_it_and_read_back() -> None:
    for _ in range(5):
        key = Ed25519PrivateKey.generate()
        theirs = _openssl_private(key)
        pem = private_key_to_pem(key)
        assert pem == theirs.private_bytes(PEM, PKCS8, serialization.NoEncryption())
        assert public_key_to_pem(key.public_key()) == theirs.public_key().public_bytes(PEM, SPKI)
        loaded = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(loaded, openssl.Ed25519PrivateKey)
        assert loaded.private_bytes_raw() == key.private_bytes_raw()
        assert private_key_from_pem(pem) == key
        assert private_key_from_pem(pem.decode()) == key
        assert public_key_from_pem(public_key_to_pem(key.public_key())) == key.public_key()


def test_pem_written_by_cryptography_is_read() -> None:
    theirs = openssl.Ed25519PrivateKey.generate()
    pem = theirs.private_bytes(PEM, PKCS8, serialization.NoEncryption())
    key = private_key_from_pem(b"\n" + pem.replace(b"\n", b"\r\n") + b"\n\n")
    assert key.private_bytes_raw() == theirs.private_bytes_raw()
    pub = public_key_from_pem(theirs.public_key().public_bytes(PEM, SPKI))
    assert pub.public_bytes_raw() == theirs.public_key().public_bytes_raw()


def test_the_rfc8410_form_with_attributes_and_public_key_is_read() -> None:
    theirs = serialization.load_pem_private_key(RFC8410_PRIVATE, password=None)
    assert isinstance(theirs, openssl.Ed25519PrivateKey)
    key = private_key_from_pem(RFC8410_PRIVATE)
    assert key.private_bytes_raw() == theirs.private_bytes_raw()
    assert key.public_key().public_bytes_raw().hex() == RFC8410_PUBLIC
    der = bytearray(_der(RFC8410_PRIVATE))
    der[-1] ^= 1  # a public key that is not the private key's
    with pytest.raises(ValueError, match="not the private key's"):
        private_key_from_pem(_pem("PRIVATE KEY", bytes(der)))
    minimal = _der(private_key_to_pem(key))
    version1 = bytes([0x30, 0x51]) + b"\x02\x01\x01" + minimal[5:] + b"\x81\x21\x00"
    assert private_key_from_pem(_pem("PRIVATE KEY", version1 + RFC8410_PUBLIC_RAW)) == key


@functools.cache
def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _others() -> list[tuple[bytes, bytes, str]]:
    """(private PEM, public PEM, expected message) of keys that are not Ed25519."""
    out = []
    for key, name in (
        (_rsa(), "RSA"),
        (ec.generate_private_key(ec.SECP256R1()), "elliptic-curve"),
        (x25519.X25519PrivateKey.generate(), "X25519"),
        (ed448.Ed448PrivateKey.generate(), "Ed448"),
    ):
        private = key.private_bytes(PEM, PKCS8, serialization.NoEncryption())
        public = key.public_key().public_bytes(PEM, SPKI)
        out.append((private, public, name))
    return out


def test_other_kinds_of_keys_are_refused_by_name() -> None:
    for private, public, name in _others():
        with pytest.raises(ValueError, match=rf"expected an Ed25519 .*got an? {name}"):
            private_key_from_pem(private)
        with pytest.raises(ValueError, match=rf"expected an Ed25519 .*got an? {name}"):
            public_key_from_pem(public)
    traditional = _rsa().private_bytes(
        PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="'PRIVATE KEY' block, got a 'RSA PRIVATE KEY' block"):
        private_key_from_pem(traditional)


def test_encrypted_and_malformed_pem_is_refused_with_what_was_expected() -> None:
    key = Ed25519PrivateKey.generate()
    theirs = _openssl_private(key)
    encrypted = theirs.private_bytes(
        PEM, PKCS8, serialization.BestAvailableEncryption(b"correct horse")
    )
    with pytest.raises(ValueError, match=r"encrypted private key.*unencrypted PKCS#8"):
        private_key_from_pem(encrypted)
    pem = private_key_to_pem(key)
    der = _der(pem)
    cases = {
        "no PEM header": b"MC4CAQAwBQYDK2VwBCIEI",
        "got a 'PUBLIC KEY' block": public_key_to_pem(key.public_key()),
        "text after the -----END": pem + b"garbage\n",
        "no -----END PRIVATE KEY----- line": pem.replace(b"-----END PRIVATE KEY-----", b""),
        "got more than one": pem + pem,
        "another PEM boundary": pem.replace(b"\n-----END", b"\n-----\n-----END"),
        "PEM headers": pem.replace(b"KEY-----\n", b"KEY-----\nProc-Type: 4,ENCRYPTED\n", 1),
        "not base64": pem.replace(pem.splitlines()[1], b"!" * 64),
        "not ASCII": pem.replace(b"MC4", b"\xc3\xa9C4"),
        "got 49": _pem("PRIVATE KEY", der + b"\x00"),  # trailing data, outer length kept
        "got 47": _pem("PRIVATE KEY", der[:-1]),
        "got 50": _pem("PRIVATE KEY", bytes([0x30, 0x30]) + der[2:] + b"\x00\x00"),
    }
    for message, data in cases.items():
        with pytest.raises(ValueError, match=message):
            private_key_from_pem(data)
    public = public_key_to_pem(key.public_key())
    spki = _der(public)
    for message, data in {
        "got a 'PRIVATE KEY' block": pem,
        "got 45": _pem("PUBLIC KEY", spki + b"\x00"),
        "got 43": _pem("PUBLIC KEY", spki[:-1]),
        "small-order": _pem("PUBLIC KEY", spki[:12] + (1).to_bytes(32, "little")),
    }.items():
        with pytest.raises(ValueError, match=message):
            public_key_from_pem(data)
    with pytest.raises(TypeError, match="bytes or str"):
        private_key_from_pem(12)  # type: ignore[arg-type]
