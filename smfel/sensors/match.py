"""One-to-one matching of detected beats to reference beats within a tolerance window.

The beat-by-beat comparison of ANSI/AAMI EC57 (as in the WFDB ``bxb`` tool): a detection
matches the nearest unmatched reference beat within the window (150 ms by convention);
unmatched references are false negatives, unmatched detections false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Match", "match_beats"]


@dataclass(frozen=True, slots=True, eq=False)
class Match:
    """``pairs`` (k, 2) of (reference position, detection position) indices into the inputs."""

    pairs: NDArray[np.intp]
    missed: NDArray[np.intp]
    extra: NDArray[np.intp]

    @property
    def tp(self) -> int:
        return len(self.pairs)

    @property
    def fn(self) -> int:
        return len(self.missed)

    @property
    def fp(self) -> int:
        return len(self.extra)


def match_beats(reference: ArrayLike, detected: ArrayLike, tolerance: int) -> Match:
    """Match sorted sample indices; each beat is used at most once, closest pairs first."""
    ref = np.asarray(reference, dtype=np.int64)
    det = np.asarray(detected, dtype=np.int64)
    if (np.diff(ref) < 0).any() or (np.diff(det) < 0).any():
        raise ValueError("beat positions must be sorted")
    # Candidate pairs: each detection with its neighbours in the reference list.
    cand: list[tuple[int, int, int]] = []
    if len(ref) and len(det):
        pos = np.searchsorted(ref, det)
        for off in (-1, 0):
            j = pos + off
            ok = (j >= 0) & (j < len(ref))
            dj, rj = np.flatnonzero(ok), j[ok]
            dist = np.abs(ref[rj] - det[dj])
            keep = dist <= tolerance
            cand.extend(zip(dist[keep].tolist(), rj[keep].tolist(), dj[keep].tolist(), strict=True))
    cand.sort()
    used_r: set[int] = set()
    used_d: set[int] = set()
    pairs = []
    for _, r, d in cand:
        if r in used_r or d in used_d:
            continue
        used_r.add(r)
        used_d.add(d)
        pairs.append((r, d))
    pairs.sort()
    pr = np.array(pairs, dtype=np.intp).reshape(-1, 2)
    missed = np.setdiff1d(np.arange(len(ref)), pr[:, 0]).astype(np.intp)
    extra = np.setdiff1d(np.arange(len(det)), pr[:, 1]).astype(np.intp)
    return Match(pr, missed, extra)
