"""Roots of ranges of the log tree for proofs, with a cache of large complete subtrees.

An RFC 9162 proof (section 2.1.3.1 and 2.1.4.1) needs ``MTH`` of O(log n) ranges of the log. Each
range the proof recursion asks for starts at a multiple of a power of two at least as large as the
range, so it splits into aligned perfect subtrees, one per set bit of its length, whose roots fold
together from the right. A log only grows, so a complete perfect subtree never changes: the roots
of those of at least ``2**min_level`` leaves are kept once computed. The first proof reads the
leaf hashes it needs; later proofs in a large log read a few hundred leaf hashes at most.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from smfel.aggregator.ledger.merkle import EMPTY_ROOT, perfect_root, root_hash

__all__ = ["LeafReader", "SubtreeCache"]

#: Leaf hashes of the log entries ``lo <= index < hi``, in order.
LeafReader = Callable[[int, int], list[bytes]]

_sha256 = hashlib.sha256


def _leaves(read: LeafReader, start: int, size: int) -> list[bytes]:
    leaves = read(start, start + size)
    if len(leaves) != size:
        raise ValueError(
            f"expected {size} leaf hashes from index {start}, the log gave {len(leaves)}"
        )
    return leaves


class SubtreeCache:
    """Remembers roots of aligned perfect subtrees of ``2**min_level`` leaves or more."""

    def __init__(self, min_level: int = 10, max_entries: int = 1 << 16) -> None:
        self._min = 1 << min_level
        self._max_entries = max_entries
        self._roots: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self._roots)

    def range_root(self, read: LeafReader, lo: int, hi: int) -> bytes:
        """``MTH`` of the leaves ``lo <= i < hi``."""
        length = hi - lo
        if length <= 0:
            return EMPTY_ROOT
        if lo % (1 << (length - 1).bit_length()):
            # Not a range of the proof recursion: hash it as RFC 9162 defines, from its leaves.
            return root_hash(read(lo, hi))
        parts: list[bytes] = []
        start = lo
        for bit in range(length.bit_length() - 1, -1, -1):
            size = 1 << bit
            if length & size:
                parts.append(self._perfect(read, start, size))
                start += size
        acc = parts[-1]
        for node in reversed(parts[:-1]):
            acc = _sha256(b"\x01" + node + acc).digest()
        return acc

    def _perfect(self, read: LeafReader, start: int, size: int) -> bytes:
        if size < self._min:
            return perfect_root(_leaves(read, start, size))
        key = (start, size)
        cached = self._roots.get(key)
        if cached is not None:
            return cached
        if size == self._min:
            root = perfect_root(_leaves(read, start, size))
        else:
            half = size // 2
            left = self._perfect(read, start, half)
            root = _sha256(b"\x01" + left + self._perfect(read, start + half, half)).digest()
        if len(self._roots) < self._max_entries:
            self._roots[key] = root
        return root
