"""The signed federated protocol: envelopes, their canonical encoding, the strict parser.

DESIGN.md "Wire protocol" and docs/protocol.md (the verification rules for third parties).
Signatures are Ed25519 (RFC 8032), timestamps RFC 3339 UTC, JSON per RFC 8259 in the canonical
form of :func:`smfel.agent.codec.canonical_json`.
"""

from smfel.agent.protocol._base import SignedEnvelope
from smfel.agent.protocol.checks import NonceCache, check_statistics_bounds
from smfel.agent.protocol.control import GlobalModel, LedgerCheckpoint, RoundAnnouncement
from smfel.agent.protocol.limits import DEFAULT_LIMITS, RETAINED_LIMITS, Limits
from smfel.agent.protocol.parse import (
    ENVELOPE_TYPES,
    check_timestamp,
    load_json,
    parse_checkpoint,
    parse_envelope,
    parse_global,
    parse_rotation,
    parse_round,
    parse_update,
    verify_signature,
)
from smfel.agent.protocol.reasons import ProtocolError, Reason, Rejected
from smfel.agent.protocol.rotation import KeyRotation
from smfel.agent.protocol.update import KINDS, Update, UpdateKind

__all__ = [
    "DEFAULT_LIMITS",
    "ENVELOPE_TYPES",
    "KINDS",
    "RETAINED_LIMITS",
    "GlobalModel",
    "KeyRotation",
    "LedgerCheckpoint",
    "Limits",
    "NonceCache",
    "ProtocolError",
    "Reason",
    "Rejected",
    "RoundAnnouncement",
    "SignedEnvelope",
    "Update",
    "UpdateKind",
    "check_statistics_bounds",
    "check_timestamp",
    "load_json",
    "parse_checkpoint",
    "parse_envelope",
    "parse_global",
    "parse_rotation",
    "parse_round",
    "parse_update",
    "verify_signature",
]
