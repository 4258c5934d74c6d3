"""Ed25519 keys: identifiers, signing and verification of canonical bytes.

A key id is ``ed25519:`` followed by the first 16 bytes (32 hex digits) of SHA-256 over the raw
32-byte public key, so anyone holding the public key can recompute it. Signatures are Ed25519
(RFC 8032) over canonical bytes, carried as standard base64.

Verification applies one strict rule set whichever library does the curve arithmetic: the rules
of RFC 8032, section 5.1.7, with the checks libsodium adds. A signature ``R || S`` by the key
``A`` over ``M`` holds when

* ``S < L`` (the group order), so one signature has one spelling;
* ``A`` is a canonical encoding (``y < p``) of a curve point that is not of small order, and
  ``R`` is not of small order (small-order points let one signature hold for many messages);
* ``[S]B - [SHA-512(R || A || M)]A`` encodes to exactly the bytes ``R`` (so a non-canonical
  ``R`` never verifies).

libsodium (PyNaCl) checks all of these itself; OpenSSL (``cryptography``) checks all but the
small-order and canonical-key rules, which are checked here before it runs. The two therefore
accept exactly the same signatures (``tests/protocol/test_ed25519_backends.py`` holds them to
it), and the faster one verifies: libsodium's curve arithmetic is faster, OpenSSL's SHA-512 is,
so libsodium takes messages up to :data:`SODIUM_MAX_MESSAGE` bytes when PyNaCl is installed
(a ``beta`` update at L = 256 is 11 KB) and OpenSSL the rest (a ``stats`` update is 700 KB).
Signing always uses OpenSSL: it is as fast as libsodium at update sizes and faster beyond.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable
from typing import Literal, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def _load_sodium() -> Callable[[bytes, bytes], bool] | None:
    """``verify(signature + message, raw_public_key)`` by libsodium, if PyNaCl is installed
    (it is optional: OpenSSL does every verification without it)."""
    try:
        from nacl.bindings import crypto_sign_open  # type: ignore[import-not-found, unused-ignore]
        from nacl.exceptions import BadSignatureError  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None

    def verify(signed: bytes, public_key: bytes) -> bool:
        try:
            crypto_sign_open(signed, public_key)
        except BadSignatureError:
            return False
        return True

    return verify


_sodium_verify = _load_sodium()

__all__ = [
    "BACKENDS",
    "SMALL_ORDER_Y",
    "SODIUM_MAX_MESSAGE",
    "Backend",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "key_id",
    "public_key_from_pem",
    "public_key_from_raw",
    "public_key_raw",
    "sign_bytes",
    "strict_public_key",
    "verify_bytes",
    "verify_raw",
]

Backend = Literal["openssl", "sodium"]
#: The verification backends installed here, the preferred one for small messages first.
BACKENDS: tuple[Backend, ...] = ("sodium", "openssl") if _sodium_verify else ("openssl",)
#: Messages up to this size go to libsodium when it is installed (see the module docstring;
#: ``python -m benchmarks protocol`` measures both backends at 11 KB and 700 KB).
SODIUM_MAX_MESSAGE = 32 * 1024

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_Y_MASK = (1 << 255) - 1
#: The y-coordinate of the points of order 8 (the others are ``p - _Y8``).
_Y8 = 0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826
#: Encoded y-coordinates (sign bit cleared) of the points of order 1, 2, 4 and 8, with the
#: non-canonical spellings ``p`` (of 0) and ``p + 1`` (of 1): libsodium's block list.
SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _P, _P + 1, _Y8, _P - _Y8})


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _y(encoding: bytes) -> int:
    return int.from_bytes(encoding, "little") & _Y_MASK


def strict_public_key(raw: bytes) -> bool:
    """Whether ``raw`` may sign: a canonical encoding of a point that is not of small order.
    (Whether it is on the curve at all is checked when it is decoded.)"""
    y = _y(raw)
    return y < _P and y not in SMALL_ORDER_Y


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """The public key from its 32 raw bytes; ``ValueError`` if they are not a valid key (not on
    the curve, a non-canonical encoding or a point of small order, which no signer holds)."""
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    if not strict_public_key(raw):
        raise ValueError(
            "not an Ed25519 public key: a small-order point or a non-canonical encoding"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    """The public key in a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) block; ``ValueError`` if
    ``data`` is not PEM or holds another kind of key."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"not a PEM public key: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return public_key_from_raw(public_key_raw(key))


class _KeyInfo(NamedTuple):
    key: Ed25519PublicKey  # held so that its id() is not reused while cached
    raw: bytes
    key_id: str
    strict: bool


#: Per key object: its raw bytes, id and strictness, computed once (a receiver verifies with
#: the same few key objects all day; ``cryptography``'s keys are neither hashable nor weakly
#: referenceable, so they are found by identity).
_INFO: dict[int, _KeyInfo] = {}
_INFO_MAX = 4096


def _info(key: Ed25519PublicKey) -> _KeyInfo:
    info = _INFO.get(id(key))
    if info is None or info.key is not key:
        raw = public_key_raw(key)
        kid = "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]
        info = _KeyInfo(key, raw, kid, strict_public_key(raw))
        if len(_INFO) >= _INFO_MAX:
            _INFO.clear()
        _INFO[id(key)] = info
    return info


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    if isinstance(key, Ed25519PrivateKey):
        return "ed25519:" + hashlib.sha256(public_key_raw(key.public_key())).hexdigest()[:32]
    return _info(key).key_id


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    """Base64 Ed25519 signature of ``data``."""
    return binascii.b2a_base64(key.sign(data), newline=False).decode("ascii")


def verify_raw(
    key: Ed25519PublicKey, data: bytes, signature: bytes, *, backend: Backend | None = None
) -> bool:
    """True when the 64 bytes ``signature`` are a valid Ed25519 signature of ``data`` by
    ``key`` under the strict rules of the module docstring. ``backend`` forces one library
    (``ValueError`` if it is not installed); by default the faster one for ``data`` runs."""
    if len(signature) != 64:
        return False
    if backend is None:
        backend = "sodium" if _sodium_verify and len(data) <= SODIUM_MAX_MESSAGE else "openssl"
    info = _info(key)
    if (
        not info.strict
        or int.from_bytes(signature[32:], "little") >= _L
        or _y(signature[:32]) in SMALL_ORDER_Y
    ):
        return False
    if backend == "sodium":
        if _sodium_verify is None:
            raise ValueError("the sodium backend needs PyNaCl, which is not installed")
        return _sodium_verify(signature + data, info.raw)
    if backend != "openssl":
        raise ValueError(f"backend must be one of ('openssl', 'sodium'), got {backend!r}")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def verify_bytes(key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    """True when ``signature`` (standard base64 of 64 bytes) is a valid Ed25519 signature of
    ``data`` by ``key`` (see :func:`verify_raw`)."""
    if not isinstance(signature, str) or len(signature) != 88:
        return False
    try:
        sig = binascii.a2b_base64(signature, strict_mode=True)
    except (binascii.Error, ValueError):
        return False
    return verify_raw(key, data, sig)
