"""Proofs built through the subtree cache equal the RFC 9162 proofs over the plain leaf list."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smfel.aggregator.ledger.merkle import (
    consistency_path,
    consistency_path_from,
    inclusion_path,
    inclusion_path_from,
    leaf_hash,
    root_hash,
)
from smfel.aggregator.ledger.subtrees import SubtreeCache


class CountingLog:
    def __init__(self, n: int) -> None:
        self.leaves = [leaf_hash(f"e{i}".encode()) for i in range(n)]
        self.read_count = 0

    def read(self, lo: int, hi: int) -> list[bytes]:
        self.read_count += hi - lo
        return self.leaves[lo:hi]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_cached_proofs_equal_plain_proofs(n: int, data: st.DataObject) -> None:
    log = CountingLog(n)
    cache = SubtreeCache(min_level=2)

    def range_root(lo: int, hi: int) -> bytes:
        return cache.range_root(log.read, lo, hi)

    for _ in range(3):  # repeated, so later proofs come from the cache
        m = data.draw(st.integers(min_value=0, max_value=n - 1))
        assert inclusion_path_from(range_root, m, n) == inclusion_path(log.leaves, m, n)
        old = data.draw(st.integers(min_value=0, max_value=n))
        assert consistency_path_from(range_root, old, n) == consistency_path(log.leaves, old, n)
        assert range_root(0, old) == root_hash(log.leaves[:old])


def test_the_cache_saves_reading_the_log_again() -> None:
    log = CountingLog(5000)
    cache = SubtreeCache(min_level=6)

    def range_root(lo: int, hi: int) -> bytes:
        return cache.range_root(log.read, lo, hi)

    inclusion_path_from(range_root, 17, 5000)
    first = log.read_count
    assert first >= 4900  # the first proof reads (nearly) the whole log
    log.read_count = 0
    assert inclusion_path_from(range_root, 3001, 5000) == inclusion_path(log.leaves, 3001, 5000)
    assert log.read_count < 300
    assert len(cache) > 0


def test_a_short_read_is_an_error() -> None:
    log = CountingLog(64)
    cache = SubtreeCache(min_level=2)
    with pytest.raises(ValueError, match="expected 4 leaf hashes from index 64"):
        cache.range_root(log.read, 64, 68)
