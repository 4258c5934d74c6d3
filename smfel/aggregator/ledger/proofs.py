"""Inclusion and consistency proofs as value objects with a JSON form (RFC 9162 section 2.1.3/4).

A proof carries what the log claims (sizes, roots, the path). A verifier must not take the roots
from the proof: it compares them with roots it already trusts (a signed checkpoint), see
:mod:`smfel.aggregator.ledger.client`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smfel.aggregator.ledger.errors import LedgerInputError
from smfel.aggregator.ledger.merkle import (
    hash_from_text,
    hash_text,
    verify_consistency,
    verify_inclusion,
)

__all__ = ["ConsistencyProof", "InclusionProof"]


def _hash_from_hex(field: str, value: object) -> bytes:
    try:
        return hash_from_text(value)
    except ValueError as err:
        raise LedgerInputError(field, str(err)) from err


def _int(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LedgerInputError(field, f"expected a non-negative integer, got {value!r}")
    return value


def _path(value: object) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise LedgerInputError("path", f"expected a list of sha256:<hex> hashes, got {value!r}")
    return tuple(_hash_from_hex(f"path[{i}]", v) for i, v in enumerate(value))


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """The log's claim that the leaf ``leaf_hash`` sits at ``leaf_index`` in the tree ``root``."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root: bytes

    def verify(self) -> bool:
        """Self-consistency only: the path leads from the leaf to the root the proof names."""
        return verify_inclusion(
            self.leaf_hash, self.leaf_index, self.tree_size, self.path, self.root
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "inclusion",
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": hash_text(self.leaf_hash),
            "path": [hash_text(p) for p in self.path],
            "root": hash_text(self.root),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> InclusionProof:
        if not isinstance(obj, Mapping) or obj.get("type") != "inclusion":
            raise LedgerInputError("proof", "expected an object with type 'inclusion'")
        return cls(
            _int("leaf_index", obj.get("leaf_index")),
            _int("tree_size", obj.get("tree_size")),
            _hash_from_hex("leaf_hash", obj.get("leaf_hash")),
            _path(obj.get("path")),
            _hash_from_hex("root", obj.get("root")),
        )


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The log's claim that the tree ``second_root`` extends the tree ``first_root``."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    path: tuple[bytes, ...]

    def verify(self) -> bool:
        """Self-consistency only: the path links the two roots the proof names."""
        return verify_consistency(
            self.first, self.second, self.first_root, self.second_root, self.path
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "consistency",
            "first": self.first,
            "second": self.second,
            "first_root": hash_text(self.first_root),
            "second_root": hash_text(self.second_root),
            "path": [hash_text(p) for p in self.path],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ConsistencyProof:
        if not isinstance(obj, Mapping) or obj.get("type") != "consistency":
            raise LedgerInputError("proof", "expected an object with type 'consistency'")
        return cls(
            _int("first", obj.get("first")),
            _int("second", obj.get("second")),
            _hash_from_hex("first_root", obj.get("first_root")),
            _hash_from_hex("second_root", obj.get("second_root")),
            _path(obj.get("path")),
        )
