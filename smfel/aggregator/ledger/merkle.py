"""Merkle tree hashing, proofs and proof verification of RFC 9162 (Certificate Transparency 2.0).

Section 2.1.1 defines the Merkle Tree Hash of a list of entries ``D[n]``::

    MTH({})    = SHA-256()
    MTH({d0})  = SHA-256(0x00 || d0)                      # leaf hash
    MTH(D[n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
                 where k is the largest power of two smaller than n

The different prefixes for leaves and interior nodes keep a leaf from being passed off as a node
(second-preimage resistance). Everything below works on *leaf hashes* (``leaf_hash(d)``).

* :class:`Frontier` keeps the roots of the perfect subtrees that make up a tree of any size (one
  per set bit of the size, O(log n) hashes), so appending is amortised one node hash per leaf and
  the root of the whole log is recomputed in O(log n): this is what makes verifying a log of a
  million entries a linear scan.
* :func:`inclusion_path` and :func:`consistency_path` build the proofs of sections 2.1.3.1 and
  2.1.4.1; :func:`verify_inclusion` and :func:`verify_consistency` are the verification
  algorithms of sections 2.1.3.2 and 2.1.4.2, step by step.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "RangeRoot",
    "consistency_path",
    "consistency_path_from",
    "hash_from_text",
    "hash_text",
    "inclusion_path",
    "inclusion_path_from",
    "leaf_hash",
    "node_hash",
    "perfect_root",
    "root_from_consistency",
    "root_from_inclusion",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_sha256 = hashlib.sha256
#: MTH of the empty list: the hash of the empty string.
EMPTY_ROOT: bytes = _sha256(b"").digest()


_HASH_TEXT = re.compile(r"sha256:[0-9a-f]{64}")


def hash_text(digest: bytes) -> str:
    """The project's text form of a SHA-256 digest: ``sha256:<64 lowercase hex>``."""
    return "sha256:" + digest.hex()


def hash_from_text(value: object) -> bytes:
    """The 32 bytes of a ``sha256:<hex>`` string; ``ValueError`` naming the expected form."""
    if not isinstance(value, str) or not _HASH_TEXT.fullmatch(value):
        raise ValueError(f"expected sha256:<64 lowercase hex digits>, got {value!r:.90}")
    return bytes.fromhex(value[7:])


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The ``k`` of RFC 9162: the largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a Merkle tree: roots of its perfect subtrees, largest (leftmost) first.

    A tree of size ``n`` is the concatenation of perfect subtrees, one per set bit of ``n``. Their
    roots are all that is needed to append further leaves and to compute ``MTH`` of the whole
    tree, so the frontier stands in for the full list of leaves.
    """

    __slots__ = ("_nodes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._nodes: list[bytes] = []

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash; merges the equal-sized subtrees it completes."""
        n = self._size
        nodes = self._nodes
        h = leaf
        while n & 1:
            h = _sha256(b"\x01" + nodes.pop() + h).digest()
            n >>= 1
        nodes.append(h)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes: whole perfect subtrees at a time, hashed level by level."""
        items = leaves if isinstance(leaves, list | tuple) else list(leaves)
        i, total = 0, len(items)
        while i < total:
            remaining = total - i
            # The largest perfect subtree that fits in what is left and keeps the tree aligned:
            # its size divides the current size (the lowest set bit), so it can be merged in.
            chunk = 1 << (remaining.bit_length() - 1)
            if self._size:
                chunk = min(chunk, self._size & -self._size)
            if chunk == 1:
                self.append(items[i])
            else:
                self._push(perfect_root(items[i : i + chunk]), chunk)
            i += chunk

    def _push(self, node: bytes, count: int) -> None:
        """Merge the root of a perfect subtree of ``count`` leaves (aligned) into the frontier."""
        n = self._size // count
        nodes = self._nodes
        while n & 1:
            node = _sha256(b"\x01" + nodes.pop() + node).digest()
            n >>= 1
        nodes.append(node)
        self._size += count

    def root(self) -> bytes:
        """``MTH`` of every leaf appended so far (RFC 9162 section 2.1.1)."""
        nodes = self._nodes
        if not nodes:
            return EMPTY_ROOT
        acc = nodes[-1]
        # Smaller subtrees sit to the right; RFC 9162 splits at the largest power of two, so the
        # root folds the subtrees together from the right.
        for i in range(len(nodes) - 2, -1, -1):
            acc = _sha256(b"\x01" + nodes[i] + acc).digest()
        return acc

    def copy(self) -> Frontier:
        other = Frontier()
        other._size = self._size
        other._nodes = list(self._nodes)
        return other

    def to_bytes(self) -> bytes:
        """The subtree roots concatenated; with :attr:`size`, enough to restore the frontier."""
        return b"".join(self._nodes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> Frontier:
        """Restore a frontier saved with :meth:`to_bytes`; ``ValueError`` if they do not match."""
        if size < 0:
            raise ValueError(f"a tree size is non-negative, got {size}")
        count = size.bit_count()
        if len(blob) != count * HASH_SIZE:
            raise ValueError(
                f"a frontier of a tree of size {size} holds {count} hashes "
                f"({count * HASH_SIZE} bytes), got {len(blob)} bytes"
            )
        f = cls()
        f._size = size
        f._nodes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        return f

    @classmethod
    def of(cls, leaves: Iterable[bytes]) -> Frontier:
        f = cls()
        f.extend(leaves)
        return f


def perfect_root(level: Sequence[bytes]) -> bytes:
    """Root of a perfect tree (a power-of-two number of leaf hashes), hashed level by level."""
    n = len(level)
    if n == 0 or n & (n - 1):
        raise ValueError(f"a perfect tree has a power-of-two number of leaves, got {n}")
    while len(level) > 1:
        pairs = zip(level[::2], level[1::2], strict=True)
        level = [_sha256(b"\x01" + a + b).digest() for a, b in pairs]
    return level[0]


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """``MTH`` of a list of leaf hashes.

    Hashed level by level; an unpaired last node moves up a level unchanged, which yields the
    same tree as RFC 9162's split at the largest power of two below n.
    """
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        odd = level[-1] if len(level) & 1 else None
        pairs = zip(level[::2], level[1::2], strict=False)  # the odd one out is kept apart
        level = [_sha256(b"\x01" + a + b).digest() for a, b in pairs]
        if odd is not None:
            level.append(odd)
    return level[0]


def _check_size(what: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{what} must be in [{low}, {high}], got {value}")


#: ``MTH`` of the leaves ``lo <= i < hi`` of a log: how the proof builders read the tree.
RangeRoot = Callable[[int, int], bytes]


def _list_range_root(leaves: Sequence[bytes]) -> RangeRoot:
    return lambda lo, hi: root_hash(leaves[lo:hi])


def inclusion_path(leaves: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """``PATH(index, D[size])`` of RFC 9162 section 2.1.3.1 over the first ``size`` leaf hashes.

    The path lists sibling subtree hashes from the leaf up to the root.
    """
    n = len(leaves) if size is None else size
    _check_size("tree size", n, 1, len(leaves))
    return inclusion_path_from(_list_range_root(leaves), index, n)


def inclusion_path_from(range_root: RangeRoot, index: int, size: int) -> list[bytes]:
    """:func:`inclusion_path` over a tree read through ``range_root``."""
    _check_size("leaf index", index, 0, size - 1)
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    # Walk down from the root; each step records the hash of the subtree not containing m.
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if m < k:
            path.append(range_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_root(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def consistency_path(
    leaves: Sequence[bytes], old_size: int, new_size: int | None = None
) -> list[bytes]:
    """``PROOF(old_size, D[new_size])`` of RFC 9162 section 2.1.4.1.

    Empty when ``old_size`` is 0 or equals ``new_size`` (nothing to prove).
    """
    n = len(leaves) if new_size is None else new_size
    _check_size("new tree size", n, 0, len(leaves))
    return consistency_path_from(_list_range_root(leaves), old_size, n)


def consistency_path_from(range_root: RangeRoot, old_size: int, new_size: int) -> list[bytes]:
    """:func:`consistency_path` over a tree read through ``range_root``."""
    _check_size("old tree size", old_size, 0, new_size)
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    # SUBPROOF(m, D[lo:hi], complete), unrolled from the root down.
    while m != hi - lo:
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            path.append(range_root(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_root(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(range_root(lo, hi))
    path.reverse()
    return path


def root_from_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` leads to from ``leaf`` at ``index`` in a tree of ``size`` leaves,
    following RFC 9162 section 2.1.3.2 steps 1-4; None when the path does not fit the tree."""
    if index < 0 or index >= size:
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if len(p) != HASH_SIZE or sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does ``path`` prove ``leaf`` at ``index`` in the tree ``root``?"""
    computed = root_from_inclusion(leaf, index, size, path)
    return computed is not None and computed == root


def root_from_consistency(
    old_size: int, new_size: int, old_root: bytes, path: Sequence[bytes]
) -> bytes | None:
    """The new root that ``path`` proves to extend the tree ``old_root``, following RFC 9162
    section 2.1.4.2 steps 1-7 (with the edge cases of :func:`verify_consistency`); None when
    the path does not reproduce ``old_root`` or does not fit the sizes."""
    if old_size < 0 or new_size < old_size:
        return None
    if old_size == new_size:
        return old_root if not path else None
    if old_size == 0:
        return None  # the root of the new tree is not implied by an empty path
    if not path or any(len(p) != HASH_SIZE for p in path):
        return None
    nodes = list(path)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is itself a node
        nodes.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sr if fr == old_root and sn == 0 else None


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: is the tree ``new_root`` an append-only extension of ``old_root``?

    The RFC defines the algorithm for ``0 < old_size < new_size``. The two edge cases it leaves
    out are decided here the way the proof generator produces them: equal sizes are consistent
    exactly when the roots are equal and the path is empty; every tree extends the empty tree
    (whose root must be ``EMPTY_ROOT``), with an empty path.
    """
    if old_size == 0 and new_size >= 0:
        empty_ok = new_size > 0 or new_root == EMPTY_ROOT
        return not path and old_root == EMPTY_ROOT and empty_ok
    computed = root_from_consistency(old_size, new_size, old_root, path)
    return computed is not None and computed == new_root
