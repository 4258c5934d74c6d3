"""Limits the strict parser enforces before it trusts anything in an envelope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from smfel.agent.codec import ALLOWED_DTYPES

__all__ = ["DEFAULT_LIMITS", "RETAINED_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one envelope.

    ``max_age`` bounds how old a timestamp may be (``None``: no bound, for retained messages
    such as the global model that are legitimately old); ``max_skew`` how far in the future.
    ``require_canonical`` refuses any byte string that is not exactly the canonical encoding,
    so one message has exactly one spelling (and one id).
    """

    max_payload_bytes: int = 16 * 1024 * 1024
    max_arrays: int = 8
    max_dims: int = 2
    max_elements: int = 2048 * 2048
    allowed_dtypes: frozenset[str] = ALLOWED_DTYPES
    max_contributors: int = 100_000
    max_age: dt.timedelta | None = dt.timedelta(hours=24)
    max_skew: dt.timedelta = dt.timedelta(minutes=5)
    min_beats: int = 50
    require_canonical: bool = True

    def __post_init__(self) -> None:
        for name in ("max_payload_bytes", "max_arrays", "max_dims", "max_elements"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")
        if self.min_beats < 0:
            raise ValueError("Limits.min_beats must be >= 0")
        if self.max_age is not None and self.max_age <= dt.timedelta(0):
            raise ValueError("Limits.max_age must be positive or None")
        if not self.allowed_dtypes <= ALLOWED_DTYPES:
            raise ValueError(f"Limits.allowed_dtypes must be a subset of {sorted(ALLOWED_DTYPES)}")


#: Limits for updates (fresh messages).
DEFAULT_LIMITS = Limits()
#: Limits for retained messages (round announcement, global model, checkpoint): no age bound.
RETAINED_LIMITS = Limits(max_age=None)
