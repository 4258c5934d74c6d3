"""Exceptions of the ledger; each carries its context as attributes."""

from __future__ import annotations

from smfel.agent.errors import SmfelError

__all__ = [
    "LedgerConflictError",
    "LedgerError",
    "LedgerInputError",
    "LedgerNotFoundError",
    "LedgerStorageError",
    "ProofError",
]


class LedgerError(SmfelError):
    """Base class of the ledger's errors."""


class LedgerInputError(LedgerError, ValueError):
    """An argument or a document given to the ledger is malformed; ``field`` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class LedgerNotFoundError(LedgerError, LookupError):
    """A block or entry that does not exist was asked for."""

    def __init__(self, what: str, index: int, available: int) -> None:
        super().__init__(f"no {what} {index}: the ledger holds {available}")
        self.what = what
        self.index = index
        self.available = available


class LedgerStorageError(LedgerError):
    """The ledger's database could not be opened, read or written; ``url`` says which."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class LedgerConflictError(LedgerStorageError):
    """Another writer appended to the ledger between reading its head and writing a block."""


class ProofError(LedgerError):
    """A proof or a signed checkpoint served by a log does not verify; ``kind`` says which."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason
