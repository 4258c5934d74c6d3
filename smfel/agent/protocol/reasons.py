"""Typed rejection reasons of the wire protocol (DESIGN.md, "Wire protocol").

Every envelope that is refused is refused with exactly one :class:`Reason`, and the reason is
what the aggregator records in its ledger, so the values are part of the protocol: they never
change meaning, and new ones are only ever added.
"""

from __future__ import annotations

from enum import StrEnum

from smfel.agent.errors import SmfelError

__all__ = ["ProtocolError", "Reason", "Rejected"]


class Reason(StrEnum):
    """Why an envelope was refused. The value is the wire and ledger spelling."""

    MALFORMED = "malformed"  # not UTF-8 JSON, wrong field type or format, not canonical
    BAD_SCHEMA = "bad_schema"  # unknown schema/version, missing or unknown fields
    OVERSIZE = "oversize"  # payload, array count or element count above the limits
    BAD_SHAPE = "bad_shape"  # wrong dtype, dimensions, shape, or array names
    HASH_MISMATCH = "hash_mismatch"  # weights_hash is not the digest of the arrays
    UNKNOWN_KEY = "unknown_key"  # key_id is not an enrolled key (of this node)
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    REPLAYED_NONCE = "replayed_nonce"
    WRONG_ROUND = "wrong_round"
    DUPLICATE = "duplicate"
    NOT_FINITE = "not_finite"  # NaN or infinity in an array
    OUT_OF_BOUNDS = "out_of_bounds"  # statistics or values outside what real data can give
    TOO_FEW_BEATS = "too_few_beats"  # fewer than min_beats: the update would reveal beats


class ProtocolError(SmfelError, ValueError):
    """Base class of wire-protocol errors."""


class Rejected(ProtocolError):
    """An envelope was refused; ``reason`` is the typed reason, ``detail`` says what was expected.

    ``node_id`` and ``round`` are filled in when they were readable before the check failed.
    """

    def __init__(
        self,
        reason: Reason,
        detail: str,
        *,
        node_id: str | None = None,
        round: int | None = None,
    ) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.node_id = node_id
        self.round = round

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.reason, self.detail, self.node_id, self.round))


def _rebuild(reason: Reason, detail: str, node_id: str | None, round: int | None) -> Rejected:
    return Rejected(reason, detail, node_id=node_id, round=round)
