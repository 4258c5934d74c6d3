"""Ledger entries: the leaves of the log's Merkle tree.

An entry is one fact the aggregator records: an accepted update (node, update hash, weight), a
rejected update with its reason, the reputation snapshot of a round, the round's global model
hash, or a key event (enrol, rotate, revoke). Its one byte encoding is the canonical JSON of its
fields (``smfel.agent.codec.canonical_json``); the Merkle leaf is ``SHA-256(0x00 || bytes)``
(RFC 9162 section 2.1.1). Entries carry no position: a block's Merkle root and the log's tree
bind their order, so moving an entry changes a root.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smfel.agent.codec import canonical_json
from smfel.aggregator.ledger.errors import LedgerInputError
from smfel.aggregator.ledger.merkle import hash_text, leaf_hash

__all__ = ["ENTRY_TYPES", "KEY_EVENTS", "Entry", "LogEntry"]

ENTRY_TYPES = frozenset({"accepted", "rejected", "reputation", "global_model", "key_event"})
KEY_EVENTS = frozenset({"enrol", "rotate", "revoke"})


def _text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise LedgerInputError(field, f"expected a non-empty string, got {value!r}")
    return value


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LedgerInputError(field, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise LedgerInputError(field, f"expected a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger entry; ``data`` is its canonical JSON encoding (the Merkle leaf's input)."""

    data: bytes

    def __post_init__(self) -> None:
        try:
            obj = json.loads(self.data)
        except (ValueError, UnicodeDecodeError) as err:
            raise LedgerInputError("entry", f"expected canonical JSON bytes: {err}") from err
        if not isinstance(obj, dict) or obj.get("type") not in ENTRY_TYPES:
            raise LedgerInputError(
                "entry", f"expected a JSON object whose type is one of {sorted(ENTRY_TYPES)}"
            )
        if canonical_json(obj) != self.data:
            raise LedgerInputError("entry", "bytes are not in canonical JSON form")

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Entry:
        try:
            return cls(canonical_json(dict(fields)))
        except (TypeError, ValueError) as err:
            if isinstance(err, LedgerInputError):
                raise
            raise LedgerInputError("entry", f"not encodable as canonical JSON: {err}") from err

    @classmethod
    def accepted(cls, node: str, update_hash: str, weight: float) -> Entry:
        return cls.of(
            {
                "type": "accepted",
                "node": _text("node", node),
                "update_hash": _text("update_hash", update_hash),
                "weight": _number("weight", weight),
            }
        )

    @classmethod
    def rejected(cls, node: str, update_hash: str | None, reason: str) -> Entry:
        if update_hash is not None:
            _text("update_hash", update_hash)
        return cls.of(
            {
                "type": "rejected",
                "node": _text("node", node),
                "update_hash": update_hash,
                "reason": _text("reason", reason),
            }
        )

    @classmethod
    def reputation(cls, scores: Mapping[str, float]) -> Entry:
        if not isinstance(scores, Mapping):
            raise LedgerInputError(
                "reputation", f"expected a mapping node -> score, got {scores!r}"
            )
        clean = {
            _text("reputation node", k): _number(f"reputation[{k}]", v) for k, v in scores.items()
        }
        return cls.of({"type": "reputation", "scores": clean})

    @classmethod
    def global_model(cls, model_hash: str) -> Entry:
        return cls.of(
            {"type": "global_model", "model_hash": _text("global_model_hash", model_hash)}
        )

    @classmethod
    def key_event(
        cls,
        event: str,
        node: str,
        key_id: str,
        *,
        public_key: str | None = None,
        previous_key_id: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Entry:
        if event not in KEY_EVENTS:
            raise LedgerInputError("event", f"expected one of {sorted(KEY_EVENTS)}, got {event!r}")
        fields: dict[str, Any] = {
            "type": "key_event",
            "event": event,
            "node": _text("node", node),
            "key_id": _text("key_id", key_id),
        }
        if public_key is not None:
            fields["public_key"] = _text("public_key", public_key)
        if previous_key_id is not None:
            fields["previous_key_id"] = _text("previous_key_id", previous_key_id)
        if reason is not None:
            fields["reason"] = _text("reason", reason)
        if details:
            fields["details"] = dict(details)
        return cls.of(fields)

    @property
    def fields(self) -> dict[str, Any]:
        """The decoded JSON object (a fresh copy)."""
        obj: dict[str, Any] = json.loads(self.data)
        return obj

    @property
    def type(self) -> str:
        return str(self.fields["type"])

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.data)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """An entry with its place: index in the whole log, block height, position in the block."""

    log_index: int
    height: int
    position: int
    entry: Entry

    def to_json(self) -> dict[str, Any]:
        return {
            "log_index": self.log_index,
            "height": self.height,
            "position": self.position,
            "leaf_hash": hash_text(self.entry.leaf_hash),
            "entry": self.entry.fields,
        }
