"""A device's own Ed25519 key: generated on the device, kept private, exported for enrolment,
rotated with a statement signed by the old key.

Files in the key directory (mode 0700), each a PKCS#8 PEM private key with mode 0600:

* ``node.key``: the current key; the private key never leaves the device.
* ``previous.key``: the key replaced by the last rotation, kept until the aggregator has
  acknowledged the rotation (until then updates signed with either key can be checked).
* ``next.key``: only exists for a moment during a rotation; a crash leaves either the old or
  the new state, and the next :meth:`KeyStore.load` finishes or undoes the rotation.

Under systemd the key can come from a credential (``LoadCredential=smfel-node-key:...``): when
``$CREDENTIALS_DIRECTORY/<credential>`` exists it is used read-only and rotation is refused (the
credential's owner rotates it).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smfel.agent.errors import SmfelError
from smfel.agent.keys import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    key_id,
    private_key_from_pem,
    private_key_to_pem,
    public_key_from_raw,
    public_key_raw,
)
from smfel.agent.protocol.rotation import KeyRotation
from smfel.agent.state import atomic_write

__all__ = ["Enrolment", "KeyStore", "KeyStoreError"]

log = logging.getLogger(__name__)

CURRENT, PREVIOUS, PENDING = "node.key", "previous.key", "next.key"
ENROLMENT_SCHEMA = "smfel.enrolment/1"


class KeyStoreError(SmfelError):
    """A key could not be loaded, stored or rotated; ``path`` and ``reason`` say why."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What a device hands over for enrolment: its node id, key id and raw public key."""

    node_id: str
    key_id: str
    public_key: str  # standard base64 of the 32 raw bytes

    @classmethod
    def of(cls, node_id: str, key: Ed25519PublicKey | Ed25519PrivateKey) -> Enrolment:
        pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
        raw = base64.b64encode(public_key_raw(pub)).decode("ascii")
        return cls(node_id=node_id, key_id=key_id(pub), public_key=raw)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ENROLMENT_SCHEMA,
            "algorithm": "ed25519",
            "node_id": self.node_id,
            "key_id": self.key_id,
            "public_key": self.public_key,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Enrolment:
        """Read an enrolment record; ``ValueError`` naming what is wrong."""
        if obj.get("schema") != ENROLMENT_SCHEMA or obj.get("algorithm") != "ed25519":
            raise ValueError(f"expected schema {ENROLMENT_SCHEMA!r} with algorithm 'ed25519'")
        node, kid, pub = obj.get("node_id"), obj.get("key_id"), obj.get("public_key")
        if not (isinstance(node, str) and isinstance(kid, str) and isinstance(pub, str)):
            raise ValueError("node_id, key_id and public_key must be strings")
        e = cls(node_id=node, key_id=kid, public_key=pub)
        if key_id(e.key()) != kid:
            raise ValueError(f"key_id {kid} is not the id of the public key")
        return e

    def key(self) -> Ed25519PublicKey:
        try:
            raw = base64.b64decode(self.public_key.encode("ascii"), validate=True)
        except ValueError as err:
            raise ValueError(f"public_key is not base64: {err}") from err
        return public_key_from_raw(raw)


def _read_key(path: Path, *, check_mode: bool) -> Ed25519PrivateKey:
    try:
        st = path.stat()
        data = path.read_bytes()
    except OSError as err:
        raise KeyStoreError(path, f"cannot read the key: {err.strerror}") from err
    if check_mode and stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyStoreError(
            path, f"mode {stat.S_IMODE(st.st_mode):04o} lets others read the key; chmod 600"
        )
    try:
        return private_key_from_pem(data)
    except ValueError as err:
        raise KeyStoreError(path, f"not an unencrypted PKCS#8 PEM Ed25519 key: {err}") from err


class KeyStore:
    """The key directory of one device. The constructor does no I/O."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        credential: str = "smfel-node-key",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.credential = credential
        self._environ = os.environ if environ is None else environ

    # -- paths ---------------------------------------------------------------------------------

    @property
    def credential_path(self) -> Path | None:
        """The systemd credential file when it exists, else ``None``."""
        base = self._environ.get("CREDENTIALS_DIRECTORY")
        if not base:
            return None
        p = Path(base) / self.credential
        return p if p.exists() else None

    @property
    def read_only(self) -> bool:
        return self.credential_path is not None

    def _path(self, name: str) -> Path:
        return self.directory / name

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if stat.S_IMODE(self.directory.stat().st_mode) != 0o700:
                self.directory.chmod(0o700)
        except OSError as err:
            raise KeyStoreError(self.directory, f"cannot prepare: {err.strerror}") from err

    # -- load ----------------------------------------------------------------------------------

    def load(self, *, create: bool = False) -> Ed25519PrivateKey:
        """The current key; with ``create`` a new one is generated when there is none."""
        cred = self.credential_path
        if cred is not None:
            return _read_key(cred, check_mode=False)
        self._recover()
        current = self._path(CURRENT)
        if not current.exists():
            if not create:
                raise KeyStoreError(current, "no key; generate one first (load(create=True))")
            self._ensure_directory()
            key = Ed25519PrivateKey.generate()
            atomic_write(current, private_key_to_pem(key), 0o600)
            log.info("generated node key %s", key_id(key))
            return key
        return _read_key(current, check_mode=True)

    def load_or_create(self) -> Ed25519PrivateKey:
        return self.load(create=True)

    def previous(self) -> Ed25519PrivateKey | None:
        """The key replaced by an unacknowledged rotation, if any."""
        if self.read_only:
            return None
        self._recover()
        p = self._path(PREVIOUS)
        return _read_key(p, check_mode=True) if p.exists() else None

    def _recover(self) -> None:
        """Finish or undo a rotation a crash interrupted (see the module docstring)."""
        pending, previous, current = self._path(PENDING), self._path(PREVIOUS), self._path(CURRENT)
        if not pending.exists():
            return
        if previous.exists() and current.exists() and previous.read_bytes() == current.read_bytes():
            os.replace(pending, current)  # the old key is safe in previous.key: finish
            log.warning("finished an interrupted key rotation")
        else:
            pending.unlink()  # the old key was never saved as previous: undo
            log.warning("undid an interrupted key rotation")

    # -- enrolment and rotation ----------------------------------------------------------------

    def export_public(self, node_id: str) -> Enrolment:
        """The enrolment record of the current key (creating the key if needed)."""
        return Enrolment.of(node_id, self.load(create=True))

    def rotate(self, node_id: str, *, now: dt.datetime | None = None) -> KeyRotation:
        """Replace the current key; the old one stays as ``previous`` until acknowledged.

        Returns the rotation statement (signed by the old key) to send to the aggregator.
        """
        if self.read_only:
            raise KeyStoreError(
                self.credential_path or self.directory,
                "the key comes from a systemd credential; rotate it where it is provisioned",
            )
        old = self.load()
        if self._path(PREVIOUS).exists():
            raise KeyStoreError(
                self._path(PREVIOUS), "the last rotation is not acknowledged yet; one at a time"
            )
        new = Ed25519PrivateKey.generate()
        atomic_write(self._path(PENDING), private_key_to_pem(new), 0o600)
        atomic_write(self._path(PREVIOUS), private_key_to_pem(old), 0o600)
        os.replace(self._path(PENDING), self._path(CURRENT))
        _fsync_dir(self.directory)
        log.info("rotated node key %s -> %s", key_id(old), key_id(new))
        return KeyRotation.create(old, new.public_key(), node_id=node_id, now=now)

    def rotation_statement(
        self, node_id: str, *, now: dt.datetime | None = None
    ) -> KeyRotation | None:
        """The statement of an unacknowledged rotation again (e.g. after a restart)."""
        old = self.previous()
        if old is None:
            return None
        return KeyRotation.create(old, self.load().public_key(), node_id=node_id, now=now)

    def acknowledge_rotation(self) -> None:
        """The aggregator enrolled the new key: forget the previous one."""
        p = self._path(PREVIOUS)
        if p.exists():
            p.unlink()
            _fsync_dir(self.directory)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
