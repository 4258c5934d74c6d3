"""Ed25519 keys: identifiers, signing and verification of canonical bytes.

A key id is ``ed25519:`` followed by the first 16 bytes (32 hex digits) of SHA-256 over the raw
32-byte public key, so anyone holding the public key can recompute it. Signatures are Ed25519
(RFC 8032) over canonical bytes, carried as standard base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "key_id",
    "public_key_from_raw",
    "public_key_raw",
    "sign_bytes",
    "verify_bytes",
]


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """The public key from its 32 raw bytes; ``ValueError`` if they are not a valid key."""
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return "ed25519:" + hashlib.sha256(public_key_raw(pub)).hexdigest()[:32]


def sign_bytes(key: Ed25519PrivateKey, data: bytes) -> str:
    """Base64 Ed25519 signature of ``data``."""
    return base64.b64encode(key.sign(data)).decode("ascii")


def verify_bytes(key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    """True when ``signature`` (base64) is a valid Ed25519 signature of ``data`` by ``key``."""
    try:
        sig = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    if len(sig) != 64:
        return False
    try:
        key.verify(sig, data)
    except InvalidSignature:
        return False
    return True
