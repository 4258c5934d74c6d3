"""RFC 9162 Merkle hashing, proofs and their verification, against a naive recursive model."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smfel.aggregator.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_path,
    hash_from_text,
    hash_text,
    inclusion_path,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)


def naive_mth(data: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1, written as the recursive definition (over entry bytes)."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:])).digest()


def naive_path(m: int, data: list[bytes]) -> list[bytes]:
    """RFC 9162 section 2.1.3.1, recursive."""
    n = len(data)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*naive_path(m, data[:k]), naive_mth(data[k:])]
    return [*naive_path(m - k, data[k:]), naive_mth(data[:k])]


def naive_subproof(m: int, data: list[bytes], complete: bool) -> list[bytes]:
    """RFC 9162 section 2.1.4.1, recursive."""
    n = len(data)
    if m == n:
        return [] if complete else [naive_mth(data)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*naive_subproof(m, data[:k], complete), naive_mth(data[k:])]
    return [*naive_subproof(m - k, data[k:], False), naive_mth(data[:k])]


def entries(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(n)]


# The test vectors of the Certificate Transparency reference implementation (RFC 6962 data):
# eight entries and the roots of their first 1..8.
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_reference_vectors() -> None:
    leaves = [leaf_hash(bytes.fromhex(x)) for x in CT_LEAVES]
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for n, expected in enumerate(CT_ROOTS, 1):
        assert root_hash(leaves[:n]).hex() == expected


def test_domain_separation() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    # A leaf whose bytes are an interior node's input does not collide with that node.
    assert leaf_hash(a + b) != node_hash(a, b)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=300))
def test_frontier_root_is_mth_for_every_size(n: int) -> None:
    data = entries(n)
    expected = naive_mth(data)
    f = Frontier()
    for d in data:
        f.append(leaf_hash(d))
    assert f.size == n
    assert f.root() == expected
    restored = Frontier.from_bytes(n, f.to_bytes())
    assert restored.root() == expected
    restored.append(leaf_hash(b"next"))
    assert restored.root() == naive_mth([*data, b"next"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=70), max_size=8))
def test_frontier_extended_in_chunks_is_mth(chunks: list[int]) -> None:
    data = entries(sum(chunks))
    f = Frontier()
    done = 0
    for c in chunks:
        f.extend([leaf_hash(d) for d in data[done : done + c]])
        done += c
        assert f.size == done
        assert f.root() == naive_mth(data[:done])
        assert root_hash([leaf_hash(d) for d in data[:done]]) == naive_mth(data[:done])


def test_frontier_rejects_a_blob_of_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="holds 2 hashes"):
        Frontier.from_bytes(3, b"\x00" * 32)


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=1, max_value=130), st.data())
def test_inclusion_paths_match_the_rfc_and_verify(n: int, data: st.DataObject) -> None:
    d = entries(n)
    leaves = [leaf_hash(x) for x in d]
    root = naive_mth(d)
    m = data.draw(st.integers(min_value=0, max_value=n - 1))
    path = inclusion_path(leaves, m)
    assert path == naive_path(m, d)
    assert verify_inclusion(leaves[m], m, n, path, root)
    # the same path does not prove another leaf, index, size or root
    other = (m + 1) % n
    if other != m:
        assert not verify_inclusion(leaves[other], m, n, path, root)
        assert not verify_inclusion(leaves[m], other, n, path, root)
    assert not verify_inclusion(leaves[m], m, n + 1, path, naive_mth([*d, b"x"]))
    assert not verify_inclusion(leaves[m], m, n, path, leaf_hash(b"not the root"))
    assert not verify_inclusion(leaves[m], n, n, path, root)  # index out of range
    if path:
        i = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        bad = list(path)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        assert not verify_inclusion(leaves[m], m, n, bad, root)
        assert not verify_inclusion(leaves[m], m, n, path[:-1], root)
        assert not verify_inclusion(leaves[m], m, n, [*path, path[0]], root)


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=1, max_value=130), st.data())
def test_consistency_paths_match_the_rfc_and_verify(n: int, data: st.DataObject) -> None:
    d = entries(n)
    leaves = [leaf_hash(x) for x in d]
    m = data.draw(st.integers(min_value=1, max_value=n))
    old_root, new_root = naive_mth(d[:m]), naive_mth(d)
    path = consistency_path(leaves, m, n)
    assert path == (naive_subproof(m, d, True) if m < n else [])
    assert verify_consistency(m, n, old_root, new_root, path)
    if m < n:
        # a forked history: the same old size, one old entry changed
        forked = list(d)
        forked[data.draw(st.integers(min_value=0, max_value=m - 1))] = b"rewritten"
        assert not verify_consistency(m, n, old_root, naive_mth(forked), path)
        assert not verify_consistency(m, n, naive_mth(forked[:m]), new_root, path)
        assert not verify_consistency(m, n, old_root, new_root, [])
        i = data.draw(st.integers(min_value=0, max_value=len(path) - 1))
        bad = list(path)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        assert not verify_consistency(m, n, old_root, new_root, bad)
        assert not verify_consistency(m, n, old_root, new_root, path[:-1])


def test_consistency_edge_cases() -> None:
    leaves = [leaf_hash(x) for x in entries(5)]
    root = root_hash(leaves)
    assert consistency_path(leaves, 0, 5) == []
    assert verify_consistency(0, 5, EMPTY_ROOT, root, [])
    assert not verify_consistency(0, 5, root, root, [])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, EMPTY_ROOT, root, [])
    assert verify_consistency(5, 5, root, root, [])
    assert not verify_consistency(5, 5, root, EMPTY_ROOT, [])
    assert not verify_consistency(5, 4, root, root, [])


def test_proof_arguments_are_checked() -> None:
    leaves = [leaf_hash(x) for x in entries(4)]
    with pytest.raises(ValueError, match="leaf index"):
        inclusion_path(leaves, 4)
    with pytest.raises(ValueError, match="tree size"):
        inclusion_path(leaves, 0, 5)
    with pytest.raises(ValueError, match="old tree size"):
        consistency_path(leaves, 5, 4)


def test_hash_text_round_trip() -> None:
    h = leaf_hash(b"x")
    assert hash_from_text(hash_text(h)) == h
    for bad in ["sha256:" + "A" * 64, h.hex(), "sha256:" + "0" * 63, 5]:
        with pytest.raises(ValueError, match="sha256:<64 lowercase hex"):
            hash_from_text(bad)
