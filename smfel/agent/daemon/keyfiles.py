"""The aggregator keys an agent trusts, read from files, and PEM helpers.

A trusted key file holds a PEM public key (SubjectPublicKeyInfo) or the 32 raw bytes in base64.
The device's own key lives in :class:`smfel.agent.keystore.KeyStore` (state directory, 0600,
or the systemd credential ``smfel-node-key``).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from pathlib import Path

from smfel.agent.errors import SmfelError
from smfel.agent.keys import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    key_id,
    private_key_to_pem,
    public_key_from_pem,
    public_key_from_raw,
    public_key_raw,
    public_key_to_pem,
)

__all__ = [
    "KeyFileError",
    "load_public_key",
    "load_trusted_keys",
    "public_key_pem",
    "write_private_key",
]


class KeyFileError(SmfelError):
    """A key file is missing, unreadable or not an Ed25519 key; ``path`` says which."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def write_private_key(path: str | Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` as PKCS#8 PEM, created with mode 0600 (never readable by others)."""
    pem = private_key_to_pem(key)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def public_key_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public_key_to_pem(pub).decode("ascii")


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """A PEM public key, or the raw 32-byte key in base64."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise KeyFileError(path, f"cannot read: {err.strerror}") from err
    if b"-----BEGIN" in data:
        try:
            return public_key_from_pem(data)
        except ValueError as err:
            raise KeyFileError(path, f"not a PEM Ed25519 public key: {err}") from err
    try:
        return public_key_from_raw(base64.b64decode(data.strip(), validate=True))
    except (binascii.Error, ValueError) as err:
        raise KeyFileError(path, f"expected a PEM public key or 32 bytes in base64: {err}") from err


def load_trusted_keys(paths: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """key id -> public key for every file in ``paths``."""
    out: dict[str, Ed25519PublicKey] = {}
    for p in paths:
        key = load_public_key(p)
        out[key_id(key)] = key
    return out


def raw_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key_raw(key)).decode("ascii")
