"""A log that serves wrong proofs or checkpoints is caught by the client-side verifier."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from smfel.agent.keys import Ed25519PrivateKey
from smfel.aggregator.ledger import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    Ledger,
    LogVerifier,
    ProofError,
    sign_checkpoint,
    verify_signed_checkpoint,
)
from smfel.aggregator.ledger.merkle import leaf_hash, verify_inclusion


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 0x80]) + h[1:]


def rounds(ledger: Ledger, first: int, last: int, tag: str = "a") -> None:
    for r in range(first, last + 1):
        ledger.append_round(
            r,
            "exact",
            accepted=[(f"node-{i}", f"sha256:{r:032x}{i:032x}", 1.0) for i in range(3)],
            global_model_hash="sha256:" + tag * 64,
        )


@pytest.fixture
def honest(tmp_path: Path, keys: list[Ed25519PrivateKey]) -> Iterator[Ledger]:
    with Ledger.open(f"sqlite:///{tmp_path / 'honest.db'}", signing_keys=keys[:2]) as ledger:
        rounds(ledger, 1, 5)
        yield ledger


def test_wrong_inclusion_proofs_are_caught(honest: Ledger, keys: list[Ed25519PrivateKey]) -> None:
    verifier = LogVerifier([k.public_key() for k in keys], k=2)
    checkpoint = verifier.accept(honest.signed_checkpoint())
    entry = honest.entry(6).entry
    good = honest.inclusion_proof(6)
    verifier.check_inclusion(entry, good)

    lies: dict[str, InclusionProof] = {
        "a sibling hash changed": replace(good, path=(flip(good.path[0]), *good.path[1:])),
        "a sibling dropped": replace(good, path=good.path[:-1]),
        "siblings reordered": replace(good, path=(good.path[1], good.path[0], *good.path[2:])),
        "another entry's path": replace(honest.inclusion_proof(7), leaf_hash=good.leaf_hash),
        "another index": replace(good, leaf_index=7),
        "a root of the log's choosing": replace(good, root=flip(good.root)),
        "a smaller tree": honest.inclusion_proof(6, 10),
    }
    for what, lie in lies.items():
        with pytest.raises(ProofError) as caught:
            verifier.check_inclusion(entry, lie)
        assert caught.value.kind == "inclusion", what
        assert not verify_inclusion(entry.leaf_hash, lie.leaf_index, lie.tree_size, lie.path,
                                    checkpoint.root) or what.startswith("a root"), what  # fmt: skip

    # An honest proof for an entry the log never held (the proof is for entry 6) is refused.
    forged = entry.data.replace(b'"weight":1.0', b'"weight":9.0')
    with pytest.raises(ProofError, match="different entry"):
        verifier.check_inclusion(forged, good)
    # A self-consistent proof against a root that is not the checkpoint's is refused too.
    fake_root_proof = InclusionProof(0, 1, leaf_hash(forged), (), leaf_hash(forged))
    assert fake_root_proof.verify()
    with pytest.raises(ProofError):
        verifier.check_inclusion(forged, fake_root_proof)
    assert verifier.checkpoint == checkpoint


def test_a_forked_log_is_caught_by_the_consistency_proof(
    tmp_path: Path, honest: Ledger, keys: list[Ed25519PrivateKey]
) -> None:
    trusted = [k.public_key() for k in keys]
    verifier = LogVerifier(trusted, k=2)
    old = verifier.accept(honest.signed_checkpoint())

    # The operator (holding the validator keys) rewrites round 3 and everything after it.
    with Ledger.open(f"sqlite:///{tmp_path / 'fork.db'}", signing_keys=keys[:2]) as fork:
        rounds(fork, 1, 2)
        rounds(fork, 3, 7, tag="b")
        assert fork.verify(trusted, k=2).ok  # internally the fork is a perfectly valid ledger
        forked_doc = fork.signed_checkpoint()
        fork_proof = fork.consistency_proof(old.tree_size)
        with pytest.raises(ProofError, match="roots other than the checkpoints"):
            verifier.accept(forked_doc, fork_proof)
        # claiming the trusted root does not help: the path does not link it to the fork
        doctored = replace(fork_proof, first_root=old.root)
        with pytest.raises(ProofError, match="does not extend"):
            verifier.accept(forked_doc, doctored)
    # nor does the honest log's own proof link the fork to the trusted checkpoint
    rounds(honest, 6, 7)
    with pytest.raises(ProofError):
        verifier.accept(forked_doc, honest.consistency_proof(old.tree_size))
    with pytest.raises(ProofError, match="needs a consistency proof"):
        verifier.accept(forked_doc)
    assert verifier.checkpoint == old  # nothing was accepted

    # the honest extension is accepted
    new = verifier.accept(honest.signed_checkpoint(), honest.consistency_proof(old.tree_size))
    assert new.tree_size > old.tree_size

    # proofs that lie about sizes or paths are refused
    good = honest.consistency_proof(old.tree_size)
    lies: list[ConsistencyProof] = [
        replace(good, path=(flip(good.path[0]), *good.path[1:])),
        replace(good, path=good.path[1:]),
        replace(good, second_root=flip(good.second_root)),
        replace(good, first=good.first - 1),
        honest.consistency_proof(old.tree_size - 1),
    ]
    for lie in lies:
        with pytest.raises(ProofError, match="consistency"):
            LogVerifier(trusted, k=2, checkpoint=old).advance(new, lie)


def test_rollback_and_equivocation_are_caught(
    honest: Ledger, keys: list[Ed25519PrivateKey]
) -> None:
    trusted = [k.public_key() for k in keys]
    older = honest.signed_checkpoint()
    rounds(honest, 6, 6)
    verifier = LogVerifier(trusted, k=2)
    verifier.accept(honest.signed_checkpoint())
    with pytest.raises(ProofError, match="went back"):
        verifier.accept(older)
    same_size = dict(honest.signed_checkpoint())
    other = Checkpoint.from_json(same_size)._replace(merkle_root="sha256:" + "ab" * 32)
    with pytest.raises(ProofError, match="two different checkpoints"):
        verifier.accept(sign_checkpoint(other, keys[:2], same_size["timestamp"]))


def test_checkpoint_signatures_are_checked(honest: Ledger, keys: list[Ed25519PrivateKey]) -> None:
    trusted = [k.public_key() for k in keys]
    doc = honest.signed_checkpoint()
    assert verify_signed_checkpoint(doc, trusted, 2) == honest.checkpoint()
    with pytest.raises(ProofError, match="2 valid trusted signature"):
        verify_signed_checkpoint(doc, trusted, 3)
    tampered = {**doc, "tree_size": doc["tree_size"] + 1}
    with pytest.raises(ProofError, match="0 valid trusted signature"):
        verify_signed_checkpoint(tampered, trusted, 1)
    stranger = Ed25519PrivateKey.generate()
    forged = sign_checkpoint(honest.checkpoint(), [stranger], doc["timestamp"])
    with pytest.raises(ProofError, match="0 valid trusted signature"):
        LogVerifier(trusted).accept(forged)
    with pytest.raises(ProofError, match=r"expected a smfel\.ledger\.checkpoint/1"):
        verify_signed_checkpoint({"height": 1}, trusted)


def test_proofs_round_trip_through_json(honest: Ledger) -> None:
    inc = honest.inclusion_proof(4)
    con = honest.consistency_proof(3)
    assert InclusionProof.from_json(inc.to_json()) == inc
    assert ConsistencyProof.from_json(con.to_json()) == con
    assert inc.verify() and con.verify()
    bad = inc.to_json()
    bad["path"] = ["00" * 32]
    with pytest.raises(ValueError, match="sha256:<64 lowercase hex"):
        InclusionProof.from_json(bad)
