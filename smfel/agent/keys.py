"""Ed25519 keys: identifiers, signing and verification of canonical bytes, PEM files.

A key id is ``ed25519:`` followed by the first 16 bytes (32 hex digits) of SHA-256 over the raw
32-byte public key, so anyone holding the public key can recompute it. Signatures are Ed25519
(RFC 8032) over canonical bytes, carried as standard base64.

The key classes are this module's own: immutable, hashable holders of the raw bytes, with the
part of ``cryptography``'s API the code base uses. The curve arithmetic is done by libsodium
(PyNaCl) where it is installed (x86_64 and aarch64) and by OpenSSL (``cryptography``, imported
on first use only) elsewhere. A device therefore never loads ``cryptography``, which costs about
8 MB of resident memory against PyNaCl's 1 MB; PEM is read and written here for the same reason
(an Ed25519 key in PKCS#8 or SubjectPublicKeyInfo is a fixed DER prefix and 32 bytes).

Verification applies one strict rule set whichever library does the curve arithmetic: the rules
of RFC 8032, section 5.1.7, with the checks libsodium adds. A signature ``R || S`` by the key
``A`` over ``M`` holds when

* ``S < L`` (the group order), so one signature has one spelling;
* ``A`` is a canonical encoding (``y < p``) of a curve point that is not of small order, and
  ``R`` is not of small order (small-order points let one signature hold for many messages);
* ``[S]B - [SHA-512(R || A || M)]A`` encodes to exactly the bytes ``R`` (so a non-canonical
  ``R`` never verifies).

libsodium checks all of these itself; OpenSSL checks all but the small-order and canonical-key
rules, which are checked here before it runs. The two therefore accept exactly the same
signatures (``tests/protocol/test_ed25519_backends.py`` holds them to it), and Ed25519 signing
is deterministic, so both sign alike too. libsodium's curve arithmetic is faster, OpenSSL's
SHA-512 is: messages up to :data:`SODIUM_MAX_MESSAGE` bytes (a ``beta`` update at L = 256 is
11 KB) always go to libsodium when it is installed. Larger ones (a ``stats`` update is 700 KB)
go to OpenSSL only in a process that asked for it with :func:`use_openssl_for_large_messages`:
the aggregator, which verifies many of them and can afford the memory; a device stays on
libsodium alone.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import importlib.util
import os
from typing import Any, Literal, NoReturn

try:
    from nacl.bindings import (  # type: ignore[import-not-found, unused-ignore]
        crypto_sign,
        crypto_sign_open,
        crypto_sign_seed_keypair,
    )
    from nacl.exceptions import BadSignatureError  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # PyNaCl is only a dependency where libsodium wheels exist
    _HAVE_SODIUM = False
else:
    _HAVE_SODIUM = True


def _load_verify_detached() -> Any:
    """libsodium's ``crypto_sign_verify_detached`` from PyNaCl's own library, or ``None``.

    PyNaCl binds only ``crypto_sign_open``, which takes the signature and the message joined
    and writes the message back out: for an 11 KB update, a join, a zeroed buffer and a copy of
    11 KB each, beside the check itself. Its library exports the detached check that
    ``crypto_sign_open`` runs (the same function of libsodium, so the same rules); it is
    called through ``ctypes`` where the symbol is found, and ``crypto_sign_open`` is used where
    it is not (a build that does not export it, a platform without ``ctypes``)."""
    try:
        import ctypes

        import nacl._sodium  # type: ignore[import-not-found, unused-ignore]

        fn = ctypes.CDLL(nacl._sodium.__file__).crypto_sign_verify_detached
    except (ImportError, OSError, AttributeError):
        return None
    # int crypto_sign_verify_detached(const unsigned char *sig, const unsigned char *m,
    #                                 unsigned long long mlen, const unsigned char *pk)
    fn.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p)
    fn.restype = ctypes.c_int
    return fn


#: ``crypto_sign_verify_detached(signature, message, len(message), public_key)``, 0 when the
#: signature holds; ``None`` where only ``crypto_sign_open`` is available. ``verify_raw``
#: calls ``_verify_detached``, which the tests also set to ``None`` to run the fallback.
_LOADED_VERIFY_DETACHED: Any = _load_verify_detached() if _HAVE_SODIUM else None
_verify_detached: Any = _LOADED_VERIFY_DETACHED

#: Found without importing it: importing costs the memory this module exists to save.
_HAVE_OPENSSL = importlib.util.find_spec("cryptography") is not None

if not (_HAVE_SODIUM or _HAVE_OPENSSL):  # pragma: no cover - a broken installation
    raise ImportError("smfel.agent.keys needs PyNaCl or cryptography for Ed25519")

__all__ = [
    "BACKENDS",
    "SMALL_ORDER_Y",
    "SODIUM_MAX_MESSAGE",
    "Backend",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "InvalidSignature",
    "backend_for",
    "key_id",
    "private_key_from_pem",
    "private_key_to_pem",
    "public_key_from_pem",
    "public_key_from_raw",
    "public_key_raw",
    "public_key_to_pem",
    "sign_bytes",
    "sign_raw",
    "strict_public_key",
    "use_openssl_for_large_messages",
    "verify_bytes",
    "verify_raw",
]

Backend = Literal["openssl", "sodium"]
#: The Ed25519 libraries installed here, the preferred one for small messages first.
_INSTALLED: tuple[tuple[Backend, bool], ...] = (
    ("sodium", _HAVE_SODIUM),
    ("openssl", _HAVE_OPENSSL),
)
BACKENDS: tuple[Backend, ...] = tuple(b for b, installed in _INSTALLED if installed)
#: Messages up to this size always go to libsodium when it is installed (see the module
#: docstring; ``python -m benchmarks protocol`` measures both libraries at 11 KB and 700 KB).
SODIUM_MAX_MESSAGE = 32 * 1024

#: The library for messages above :data:`SODIUM_MAX_MESSAGE` (one item, set by
#: :func:`use_openssl_for_large_messages`).
_large: list[Backend] = [BACKENDS[0]]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_Y_MASK = (1 << 255) - 1
#: The y-coordinate of the points of order 8 (the others are ``p - _Y8``).
_Y8 = 0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826
#: Encoded y-coordinates (sign bit cleared) of the points of order 1, 2, 4 and 8, with the
#: non-canonical spellings ``p`` (of 0) and ``p + 1`` (of 1): libsodium's block list.
SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _P, _P + 1, _Y8, _P - _Y8})


class InvalidSignature(Exception):
    """Raised by :meth:`Ed25519PublicKey.verify` for a signature that does not hold."""


def use_openssl_for_large_messages(enabled: bool = True) -> Backend:
    """Sign and verify messages above :data:`SODIUM_MAX_MESSAGE` with OpenSSL (``enabled``) or
    with the preferred library (not). A no-op where ``cryptography`` is not installed. Returns
    the library now used for large messages.

    For a process that handles many large messages and may spend the memory ``cryptography``
    takes (the aggregator); a device never calls it."""
    _large[0] = "openssl" if enabled and _HAVE_OPENSSL else BACKENDS[0]
    return _large[0]


def backend_for(size: int) -> Backend:
    """The library that signs and verifies a message of ``size`` bytes by default."""
    return BACKENDS[0] if size <= SODIUM_MAX_MESSAGE else _large[0]


def _check_backend(backend: Backend) -> None:
    if backend not in ("openssl", "sodium"):
        raise ValueError(f"backend must be one of ('openssl', 'sodium'), got {backend!r}")
    if backend not in BACKENDS:
        package = "PyNaCl" if backend == "sodium" else "cryptography"
        raise ValueError(f"the {backend} backend needs {package}, which is not installed")


def _openssl() -> Any:
    """``cryptography``'s Ed25519 module, imported on first use (never on a device with PyNaCl
    unless a caller forces the OpenSSL backend)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519


def _raw32(data: object, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"an Ed25519 {what} is bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 {what} is 32 bytes, got {len(raw)}")
    return raw


def _y(encoding: bytes) -> int:
    return int.from_bytes(encoding, "little") & _Y_MASK


def strict_public_key(raw: bytes) -> bool:
    """Whether ``raw`` may sign: a canonical encoding of a point that is not of small order.
    (Whether it is on the curve at all is checked when it is decoded.)"""
    y = _y(raw)
    return y < _P and y not in SMALL_ORDER_Y


class _Immutable:
    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: object) -> Any:
        return self


class Ed25519PublicKey(_Immutable):
    """An Ed25519 public key: its 32 raw bytes, with the key id and the strictness check
    (:func:`strict_public_key`) computed once, since a receiver verifies with the same few keys
    all day. Equal keys compare and hash equal, so keys can be set members and dict keys."""

    __slots__ = ("_key_id", "_openssl_key", "_raw", "_strict")
    _raw: bytes
    _key_id: str
    _strict: bool
    _openssl_key: Any

    def __init__(self, raw: bytes) -> None:
        raw = _raw32(raw, "public key")
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_key_id", "ed25519:" + hashlib.sha256(raw).hexdigest()[:32])
        object.__setattr__(self, "_strict", strict_public_key(raw))
        object.__setattr__(self, "_openssl_key", None)

    @classmethod
    def from_public_bytes(cls, data: bytes) -> Ed25519PublicKey:
        """The key of 32 raw bytes, checked for length only (as ``cryptography`` does): a key
        that may not sign is refused at verification; :func:`public_key_from_raw` refuses it
        at once."""
        return cls(data)

    def public_bytes_raw(self) -> bytes:
        return self._raw

    def verify(self, signature: bytes, data: bytes) -> None:
        """:class:`InvalidSignature` unless ``signature`` holds for ``data`` under the strict
        rules of the module docstring (unlike bare OpenSSL, which takes small-order keys)."""
        if not verify_raw(self, data, signature):
            raise InvalidSignature("the Ed25519 signature does not hold")

    def _openssl(self) -> Any:
        if self._openssl_key is None:
            object.__setattr__(
                self, "_openssl_key", _openssl().Ed25519PublicKey.from_public_bytes(self._raw)
            )
        return self._openssl_key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ed25519PublicKey):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"<Ed25519PublicKey {self._key_id}>"

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (Ed25519PublicKey, (self._raw,))


class Ed25519PrivateKey(_Immutable):
    """An Ed25519 private key: the 32-byte seed of RFC 8032 and its public key. It is never
    pickled or printed; it leaves the process only as PEM (:func:`private_key_to_pem`)."""

    __slots__ = ("_openssl_key", "_public", "_secret", "_seed")
    _seed: bytes
    _secret: bytes | None  # libsodium's 64-byte secret key (seed || public key)
    _public: Ed25519PublicKey
    _openssl_key: Any

    def __init__(self, seed: bytes) -> None:
        seed = _raw32(seed, "private key")
        object.__setattr__(self, "_seed", seed)
        object.__setattr__(self, "_openssl_key", None)
        if _HAVE_SODIUM:
            public, secret = crypto_sign_seed_keypair(seed)
        else:
            secret = None
            public = self._openssl().public_key().public_bytes_raw()
        object.__setattr__(self, "_secret", secret)
        object.__setattr__(self, "_public", Ed25519PublicKey(public))

    @classmethod
    def generate(cls) -> Ed25519PrivateKey:
        return cls(os.urandom(32))

    @classmethod
    def from_private_bytes(cls, data: bytes) -> Ed25519PrivateKey:
        """The key of a 32-byte seed (RFC 8032's private key, ``cryptography``'s raw bytes)."""
        return cls(data)

    def public_key(self) -> Ed25519PublicKey:
        return self._public

    def private_bytes_raw(self) -> bytes:
        return self._seed

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data`` (by the library :func:`backend_for`
        names; both give the same bytes)."""
        return sign_raw(self, data)

    def _openssl(self) -> Any:
        if self._openssl_key is None:
            object.__setattr__(
                self, "_openssl_key", _openssl().Ed25519PrivateKey.from_private_bytes(self._seed)
            )
        return self._openssl_key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ed25519PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self._seed, other._seed)

    def __hash__(self) -> int:
        return hash(self._public)

    def __repr__(self) -> str:
        return f"<Ed25519PrivateKey {self._public._key_id}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("an Ed25519 private key is not pickled; write it with private_key_to_pem")


# -- raw keys, ids ----------------------------------------------------------------------------


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes_raw()


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """The public key from its 32 raw bytes; ``ValueError`` if they are not a valid key (not on
    the curve, a non-canonical encoding or a point of small order, which no signer holds)."""
    key = Ed25519PublicKey(raw)
    if not key._strict:
        raise ValueError(
            "not an Ed25519 public key: a small-order point or a non-canonical encoding"
        )
    return key


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    if isinstance(key, Ed25519PrivateKey):
        return key._public._key_id
    return key._key_id


# -- signing and verification -----------------------------------------------------------------


def sign_raw(key: Ed25519PrivateKey, data: bytes, *, backend: Backend | None = None) -> bytes:
    """The 64-byte signature of ``data``; ``backend`` forces one library (``ValueError`` if it
    is not installed), by default :func:`backend_for` chooses."""
    if backend is None:
        backend = backend_for(len(data))
    else:
        _check_backend(backend)
    if backend == "sodium" and key._secret is not None:
        signed: bytes = crypto_sign(bytes(data), key._secret)
        return signed[:64]
    signature: bytes = key._openssl().sign(bytes(data))
    return signature


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    """Base64 Ed25519 signature of ``data``."""
    return binascii.b2a_base64(sign_raw(key, data), newline=False).decode("ascii")


def verify_raw(
    key: Ed25519PublicKey, data: bytes, signature: bytes, *, backend: Backend | None = None
) -> bool:
    """True when the 64 bytes ``signature`` are a valid Ed25519 signature of ``data`` by
    ``key`` under the strict rules of the module docstring. ``backend`` forces one library
    (``ValueError`` if it is not installed); by default :func:`backend_for` chooses."""
    if backend is None:
        backend = backend_for(len(data))
    else:
        _check_backend(backend)
    if (
        len(signature) != 64
        or not key._strict
        or int.from_bytes(signature[32:], "little") >= _L
        or _y(signature[:32]) in SMALL_ORDER_Y
    ):
        return False
    if backend == "sodium":
        if _verify_detached is not None:
            message = data if type(data) is bytes else bytes(data)
            return bool(_verify_detached(bytes(signature), message, len(message), key._raw) == 0)
        try:
            crypto_sign_open(bytes(signature) + data, key._raw)
        except BadSignatureError:
            return False
        return True
    from cryptography.exceptions import InvalidSignature as OpenSSLInvalidSignature

    try:
        key._openssl().verify(bytes(signature), bytes(data))
    except OpenSSLInvalidSignature:
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


# -- PEM ----------------------------------------------------------------------------------------

#: DER of PKCS#8 ``PrivateKeyInfo`` (RFC 5208, version 0) for Ed25519 (OID 1.3.101.112, RFC 8410
#: section 7), up to the 32-byte seed: what OpenSSL and ``cryptography`` write.
_PKCS8_V1 = bytes.fromhex("302e020100300506032b657004220420")
#: After the outer SEQUENCE header: the version (0, or 1 for RFC 5958 ``OneAsymmetricKey``),
#: the algorithm and the ``CurvePrivateKey`` OCTET STRING header, then the seed.
_PKCS8_VERSIONS = (bytes.fromhex("020100"), bytes.fromhex("020101"))
_PKCS8_ALGORITHM = bytes.fromhex("300506032b657004220420")
#: DER of ``SubjectPublicKeyInfo`` (RFC 5280) for Ed25519, up to the 32-byte key.
_SPKI = bytes.fromhex("302a300506032b6570032100")
_ED25519_OID = bytes.fromhex("06032b6570")
#: Algorithm OIDs (DER, with tag and length) of keys someone may hand over by mistake.
_OTHER_OIDS = {
    bytes.fromhex("06092a864886f70d010101"): "an RSA key",
    bytes.fromhex("06072a8648ce3d0201"): "an elliptic-curve (ECDSA) key",
    bytes.fromhex("06032b656e"): "an X25519 key",
    bytes.fromhex("06032b656f"): "an X448 key",
    bytes.fromhex("06032b6571"): "an Ed448 key",
}


def _pem_der(data: bytes | str, label: str) -> bytes:
    """The DER inside the one PEM block ``label`` that ``data`` holds (surrounding whitespace
    aside); ``ValueError`` saying what was expected for anything else."""
    expected = f"expected one PEM '{label}' block"
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            text = bytes(data).decode("ascii")
        except UnicodeDecodeError as err:
            raise ValueError(f"{expected}, got bytes that are not ASCII text") from err
    elif isinstance(data, str):
        text = data
    else:
        raise TypeError(f"PEM data is bytes or str, got {type(data).__name__}")
    lines = [line.strip() for line in text.strip().splitlines()]
    first = lines[0] if lines else ""
    if not (first.startswith("-----BEGIN ") and first.endswith("-----")):
        raise ValueError(f"{expected} (-----BEGIN {label}-----), got no PEM header")
    got = first[len("-----BEGIN ") : -len("-----")]
    if got == "ENCRYPTED PRIVATE KEY" and label == "PRIVATE KEY":
        raise ValueError(
            f"an encrypted private key: {expected}, an unencrypted PKCS#8 key "
            "(decrypt it first, e.g. openssl pkey -in KEY -out PLAIN)"
        )
    if got != label:
        raise ValueError(f"{expected}, got a '{got}' block")
    body = lines[1:]
    if any(line.startswith("-----BEGIN ") for line in body):
        raise ValueError(f"{expected}, got more than one")
    end = f"-----END {label}-----"
    if end not in body:
        raise ValueError(f"{expected}: no {end} line")
    if body.index(end) != len(body) - 1:
        raise ValueError(f"{expected}: text after the {end} line")
    body = body[:-1]
    if any(":" in line for line in body):
        raise ValueError(f"{expected}: PEM headers (such as legacy encryption) are not supported")
    if any(line.startswith("-----") for line in body):
        raise ValueError(f"{expected}: found another PEM boundary inside it")
    try:
        return binascii.a2b_base64("".join(body), strict_mode=True)
    except binascii.Error as err:
        raise ValueError(f"{expected}: the body is not base64 ({err})") from err


def _wrong_der(der: bytes, what: str, sizes: str) -> ValueError:
    for oid, name in _OTHER_OIDS.items():
        if oid in der[:32]:
            return ValueError(f"expected an Ed25519 {what}, got {name}")
    if _ED25519_OID not in der[:32]:
        return ValueError(f"expected an Ed25519 {what} (OID 1.3.101.112), got another kind")
    return ValueError(
        f"a malformed Ed25519 {what}: expected {sizes} bytes of DER, got {len(der)} "
        "(wrong lengths or data after the key)"
    )


def _pem(label: str, der: bytes) -> bytes:
    b64 = binascii.b2a_base64(der, newline=False)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"\n".join(
        [f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----\n".encode()]
    )


def private_key_to_pem(key: Ed25519PrivateKey) -> bytes:
    """``key`` as an unencrypted PKCS#8 PEM block, byte for byte as OpenSSL writes it."""
    return _pem("PRIVATE KEY", _PKCS8_V1 + key._seed)


def _der_length(der: bytes, pos: int) -> tuple[int, int]:
    """The DER length at ``der[pos]`` and where its contents start (``IndexError`` if cut)."""
    first = der[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if not 1 <= n <= 2 or der[pos + 1] == 0 or pos + 1 + n > len(der):
        raise IndexError("not a DER length")
    return int.from_bytes(der[pos + 1 : pos + 1 + n], "big"), pos + 1 + n


def _pkcs8_seed(der: bytes) -> tuple[bytes, bytes | None] | None:
    """The seed and the optional public key of an Ed25519 PKCS#8 / OneAsymmetricKey structure
    (RFC 5958, RFC 8410 section 7: optional attributes ``[0]``, public key ``[1]`` in version 1
    only), or ``None`` if ``der`` is anything else or has bytes after it."""
    try:
        if der[0] != 0x30:
            return None
        length, pos = _der_length(der, 1)
        if pos + length != len(der):
            return None
        version = der[pos : pos + 3]
        if version not in _PKCS8_VERSIONS:
            return None
        pos += 3
        if der[pos : pos + len(_PKCS8_ALGORITHM)] != _PKCS8_ALGORITHM:
            return None
        pos += len(_PKCS8_ALGORITHM)
        seed = der[pos : pos + 32]
        pos += 32
        if len(seed) != 32:
            return None
        if pos < len(der) and der[pos] == 0xA0:  # attributes: carried, not needed
            length, start = _der_length(der, pos + 1)
            pos = start + length
        public = None
        if (
            pos < len(der)
            and version == _PKCS8_VERSIONS[1]
            and der[pos : pos + 3] == b"\x81\x21\x00"
        ):
            public = der[pos + 3 : pos + 35]
            pos += 35
    except IndexError:
        return None
    if pos != len(der) or (public is not None and len(public) != 32):
        return None
    return seed, public


def private_key_from_pem(data: bytes | str) -> Ed25519PrivateKey:
    """The key in an unencrypted PKCS#8 PEM ``PRIVATE KEY`` block (RFC 8410: as OpenSSL writes
    it, or with attributes and the public key appended); ``ValueError`` for anything else
    (encrypted PEM, another kind of key, wrong lengths, trailing data)."""
    der = _pem_der(data, "PRIVATE KEY")
    parsed = _pkcs8_seed(der)
    if parsed is None:
        raise _wrong_der(der, "PKCS#8 private key", "48 (or, with the public key, 83)")
    seed, public = parsed
    key = Ed25519PrivateKey(seed)
    if public is not None and public != key._public._raw:
        raise ValueError("the public key in the PKCS#8 block is not the private key's")
    return key


def public_key_to_pem(key: Ed25519PublicKey) -> bytes:
    """``key`` as a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) block, as OpenSSL writes it."""
    return _pem("PUBLIC KEY", _SPKI + key._raw)


def public_key_from_pem(data: bytes | str) -> Ed25519PublicKey:
    """The public key in a PEM ``PUBLIC KEY`` (SubjectPublicKeyInfo) block; ``ValueError`` if
    ``data`` is not PEM, holds another kind of key or a key that may not sign (as
    :func:`public_key_from_raw`)."""
    der = _pem_der(data, "PUBLIC KEY")
    if len(der) == 44 and der.startswith(_SPKI):
        return public_key_from_raw(der[12:])
    raise _wrong_der(der, "public key", "44")
