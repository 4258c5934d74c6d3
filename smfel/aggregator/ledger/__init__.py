"""The aggregator's tamper-evident ledger (DESIGN.md "Ledger").

Signed, hash-chained blocks (one per closed round and per key event) whose entries are also the
leaves of one log-wide RFC 9162 Merkle tree, with inclusion and consistency proofs, stored in
SQLite (default) or PostgreSQL.
"""

from smfel.aggregator.ledger.block import Block, BlockHeader, Signature
from smfel.aggregator.ledger.checkpoint import (
    Checkpoint,
    sign_checkpoint,
    verify_signed_checkpoint,
)
from smfel.aggregator.ledger.client import LogVerifier
from smfel.aggregator.ledger.entry import Entry, LogEntry
from smfel.aggregator.ledger.errors import (
    LedgerConflictError,
    LedgerError,
    LedgerInputError,
    LedgerNotFoundError,
    LedgerStorageError,
    ProofError,
)
from smfel.aggregator.ledger.ledger import Ledger, utc_timestamp
from smfel.aggregator.ledger.proofs import ConsistencyProof, InclusionProof
from smfel.aggregator.ledger.storage import Storage, open_storage
from smfel.aggregator.ledger.verify import VerifyReport

__all__ = [
    "Block",
    "BlockHeader",
    "Checkpoint",
    "ConsistencyProof",
    "Entry",
    "InclusionProof",
    "Ledger",
    "LedgerConflictError",
    "LedgerError",
    "LedgerInputError",
    "LedgerNotFoundError",
    "LedgerStorageError",
    "LogEntry",
    "LogVerifier",
    "ProofError",
    "Signature",
    "Storage",
    "VerifyReport",
    "open_storage",
    "sign_checkpoint",
    "utc_timestamp",
    "verify_signed_checkpoint",
]
