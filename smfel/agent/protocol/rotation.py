"""The key rotation statement (``smfel.rotation/1``), signed by the key being replaced.

A device that rotates its key announces the new public key in a statement signed with the old
one; the aggregator, which trusts the old key, enrols the new key and records the event in its
ledger. The device keeps the old key as ``previous`` until the rotation is acknowledged.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from smfel.agent.keys import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
    key_id,
    public_key_from_raw,
    public_key_raw,
)
from smfel.agent.protocol import _fields as f
from smfel.agent.protocol._base import SignedEnvelope, signed, stamp
from smfel.agent.protocol.limits import Limits

__all__ = ["KeyRotation"]


def _public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        if base64.b64encode(raw).decode("ascii") != text:
            raise ValueError("not canonical base64")
        return public_key_from_raw(raw)
    except (binascii.Error, ValueError, UnicodeEncodeError) as err:
        raise f.fail(f"new_public_key must be the base64 of a raw Ed25519 key: {err}") from err


@dataclass(frozen=True, slots=True, eq=False)
class KeyRotation(SignedEnvelope):
    node_id: str
    previous_key_id: str
    new_key_id: str
    new_public_key: str
    timestamp: str
    nonce: str
    key_id: str
    signature: str

    SCHEMA: ClassVar[str] = "smfel.rotation/1"
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"schema", "node_id", "previous_key_id", "new_key_id", "new_public_key"}
        | {"timestamp", "nonce", "key_id", "signature"}
    )

    def __post_init__(self) -> None:
        f.check_pattern(self.node_id, f.NODE_ID, "1-64 of [A-Za-z0-9._-]", "node_id")
        for name in ("previous_key_id", "new_key_id", "key_id"):
            f.check_pattern(getattr(self, name), f.KEY_ID, "ed25519:<32 hex>", name)
        f.check_pattern(self.nonce, f.NONCE, "32 hex digits", "nonce")
        f.get_time({"timestamp": self.timestamp}, "timestamp")
        if self.key_id != self.previous_key_id:
            raise f.fail("a rotation statement is signed by the previous key (key_id)")
        if key_id(_public_key(self.new_public_key)) != self.new_key_id:
            raise f.fail("new_key_id is not the id of new_public_key")

    @classmethod
    def create(
        cls,
        old_key: Ed25519PrivateKey,
        new_public: Ed25519PublicKey,
        *,
        node_id: str,
        now: dt.datetime | None = None,
        nonce: str | None = None,
    ) -> KeyRotation:
        timestamp, nonce = stamp(now, nonce)
        fields: dict[str, Any] = dict(
            node_id=node_id,
            previous_key_id=key_id(old_key),
            new_key_id=key_id(new_public),
            new_public_key=base64.b64encode(public_key_raw(new_public)).decode("ascii"),
            timestamp=timestamp,
            nonce=nonce,
            key_id=key_id(old_key),
        )
        return signed(cls, old_key, fields)

    @property
    def new_key(self) -> Ed25519PublicKey:
        return _public_key(self.new_public_key)

    def body(self) -> dict[str, Any]:
        return {
            "schema": self.SCHEMA,
            "node_id": self.node_id,
            "previous_key_id": self.previous_key_id,
            "new_key_id": self.new_key_id,
            "new_public_key": self.new_public_key,
            "timestamp": self.timestamp,
            "nonce": self.nonce,
            "key_id": self.key_id,
        }

    @classmethod
    def from_obj(cls, obj: Mapping[str, Any], limits: Limits) -> KeyRotation:
        for name in ("new_public_key",):
            if not isinstance(obj[name], str):
                raise f.fail(f"{name} must be a base64 string")
        return cls(
            node_id=f.get_str(obj, "node_id", f.NODE_ID, "1-64 of [A-Za-z0-9._-]"),
            previous_key_id=f.get_str(obj, "previous_key_id", f.KEY_ID, "ed25519:<32 hex>"),
            new_key_id=f.get_str(obj, "new_key_id", f.KEY_ID, "ed25519:<32 hex>"),
            new_public_key=obj["new_public_key"],
            timestamp=f.get_time(obj, "timestamp"),
            nonce=f.get_str(obj, "nonce", f.NONCE, "32 hex digits"),
            key_id=f.get_str(obj, "key_id", f.KEY_ID, "ed25519:<32 hex>"),
            signature=f.get_signature(obj),
        )
