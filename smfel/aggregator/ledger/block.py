"""Ledger blocks: a signed header that chains to its predecessor and commits to its entries.

One block per closed round (kind ``round``) and one per key event (kind ``key_event``). The
header carries the height, the previous block's hash, a timestamp, kind, round and strategy, the
number of entries, the RFC 9162 Merkle root over the block's own entries, and the size and root of
the log-wide tree after the block (so every signed header is also a signed checkpoint of the
log). The block hash is SHA-256 over the header's canonical JSON; validators sign those same
bytes with Ed25519, and a block carries a list of ``{key_id, signature}`` so that k of n
validators can endorse it. Signatures are outside the hash so endorsements can be collected
without changing the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smfel.agent.codec import canonical_json
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey, key_id, sign_bytes, verify_bytes
from smfel.aggregator.ledger.entry import Entry
from smfel.aggregator.ledger.errors import LedgerInputError
from smfel.aggregator.ledger.merkle import hash_from_text, hash_text

__all__ = [
    "BLOCK_KINDS",
    "BLOCK_SCHEMA",
    "GENESIS_HASH",
    "Block",
    "BlockHeader",
    "Signature",
    "count_valid_signatures",
    "sign_payload",
    "trusted_key_map",
]

BLOCK_SCHEMA = "smfel.ledger.block/1"
BLOCK_KINDS = frozenset({"round", "key_event"})
#: The previous hash of the first block.
GENESIS_HASH = "sha256:" + "0" * 64


def _hex32(field: str, value: object) -> str:
    try:
        hash_from_text(value)
    except ValueError as err:
        raise LedgerInputError(field, str(err)) from err
    assert isinstance(value, str)
    return value


def _int(field: str, value: object, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise LedgerInputError(field, f"expected an integer >= {low}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """The signed part of a block. Hashes are ``sha256:<64 lowercase hex>``."""

    height: int
    prev_hash: str
    timestamp: str
    kind: str
    round: int | None
    strategy: str | None
    entry_count: int
    merkle_root: str
    log_size: int
    log_root: str

    def __post_init__(self) -> None:
        _int("height", self.height)
        _hex32("prev_hash", self.prev_hash)
        if not isinstance(self.timestamp, str) or not self.timestamp:
            raise LedgerInputError(
                "timestamp", f"expected an RFC 3339 string, got {self.timestamp!r}"
            )
        if self.kind not in BLOCK_KINDS:
            raise LedgerInputError(
                "kind", f"expected one of {sorted(BLOCK_KINDS)}, got {self.kind!r}"
            )
        if self.round is not None:
            _int("round", self.round)
        if self.strategy is not None and (not isinstance(self.strategy, str) or not self.strategy):
            raise LedgerInputError(
                "strategy", f"expected a non-empty string, got {self.strategy!r}"
            )
        _int("entry_count", self.entry_count)
        _hex32("merkle_root", self.merkle_root)
        _int("log_size", self.log_size)
        _hex32("log_root", self.log_root)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": BLOCK_SCHEMA,
            "height": self.height,
            "prev_hash": self.prev_hash,
            "timestamp": self.timestamp,
            "kind": self.kind,
            "round": self.round,
            "strategy": self.strategy,
            "entry_count": self.entry_count,
            "merkle_root": self.merkle_root,
            "log_size": self.log_size,
            "log_root": self.log_root,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> BlockHeader:
        if not isinstance(obj, Mapping):
            raise LedgerInputError("header", f"expected a JSON object, got {type(obj).__name__}")
        if obj.get("schema") != BLOCK_SCHEMA:
            raise LedgerInputError(
                "schema", f"expected {BLOCK_SCHEMA!r}, got {obj.get('schema')!r}"
            )
        names = ("height", "prev_hash", "timestamp", "kind", "round", "strategy", "entry_count",
                 "merkle_root", "log_size", "log_root")  # fmt: skip
        extra = set(obj) - set(names) - {"schema"}
        missing = [n for n in names if n not in obj]
        if missing or extra:
            raise LedgerInputError(
                "header", f"missing fields {missing}, unknown fields {sorted(extra)}"
            )
        return cls(**{n: obj[n] for n in names})

    @classmethod
    def parse(cls, text: str | bytes) -> BlockHeader:
        """Decode the stored canonical JSON; rejects anything not in canonical form."""
        raw = text.encode("utf-8") if isinstance(text, str) else text
        try:
            obj = json.loads(raw)
        except ValueError as err:
            raise LedgerInputError("header", f"not valid JSON: {err}") from err
        header = cls.from_json(obj)
        if header.canonical() != raw:
            raise LedgerInputError("header", "not in canonical JSON form")
        return header

    def canonical(self) -> bytes:
        """The bytes that are hashed and signed."""
        return canonical_json(self.to_json())

    @property
    def hash(self) -> str:
        return hash_text(hashlib.sha256(self.canonical()).digest())


@dataclass(frozen=True, slots=True)
class Signature:
    key_id: str
    signature: str

    def to_json(self) -> dict[str, str]:
        return {"key_id": self.key_id, "signature": self.signature}

    @classmethod
    def from_json(cls, obj: object) -> Signature:
        if (
            not isinstance(obj, Mapping)
            or not isinstance(obj.get("key_id"), str)
            or not isinstance(obj.get("signature"), str)
        ):
            raise LedgerInputError(
                "signatures", f"expected {{key_id, signature}} strings, got {obj!r}"
            )
        return cls(obj["key_id"], obj["signature"])


def sign_payload(payload: bytes, keys: Iterable[Ed25519PrivateKey]) -> tuple[Signature, ...]:
    """One signature per key over ``payload``."""
    return tuple(Signature(key_id(k), sign_bytes(k, payload)) for k in keys)


def trusted_key_map(
    keys: Iterable[Ed25519PublicKey] | Mapping[str, Ed25519PublicKey],
) -> dict[str, Ed25519PublicKey]:
    """``key_id -> public key`` for a collection of trusted validator keys."""
    if isinstance(keys, Mapping):
        return dict(keys)
    return {key_id(k): k for k in keys}


def count_valid_signatures(
    payload: bytes, signatures: Sequence[Signature], trusted: Mapping[str, Ed25519PublicKey]
) -> int:
    """How many *distinct* trusted validators signed ``payload`` (duplicates count once)."""
    good: set[str] = set()
    for sig in signatures:
        pub = trusted.get(sig.key_id)
        if pub is not None and sig.key_id not in good and verify_bytes(pub, payload, sig.signature):
            good.add(sig.key_id)
    return len(good)


@dataclass(frozen=True, slots=True)
class Block:
    """A header, its entries in order and the validators' signatures over the header."""

    header: BlockHeader
    entries: tuple[Entry, ...]
    signatures: tuple[Signature, ...]

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> str:
        return self.header.hash

    @property
    def merkle_root(self) -> str:
        return self.header.merkle_root

    def to_json(self, *, with_entries: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "hash": self.hash,
            "header": self.header.to_json(),
            "signatures": [s.to_json() for s in self.signatures],
        }
        if with_entries:
            doc["entries"] = [e.fields for e in self.entries]
        return doc
