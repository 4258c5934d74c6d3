"""The device's round logic: min_beats, snapshot differences, kinds, adoption rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from smfel.agent.daemon.federation import Federation
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey
from smfel.agent.learner import OSELM
from smfel.agent.protocol import GlobalModel, RoundAnnouncement, parse_update

pytestmark = pytest.mark.device

MODEL = "sha256:" + "ab" * 32
NOW = dt.datetime.now(dt.UTC)


def announce(
    key: Ed25519PrivateKey, rnd: int, kind: str = "stats", **kw: object
) -> RoundAnnouncement:
    args: dict[str, object] = {
        "round": rnd,
        "model_hash": MODEL,
        "strategy": "exact",
        "kind": kind,
        "deadline": NOW + dt.timedelta(minutes=5),
        "C": 1.0,
        "class_weight": (1.0, 1.0, 1.0, 1.0),
        "min_beats": 50,
    }
    args.update(kw)
    return RoundAnnouncement.create(key, **args)  # type: ignore[arg-type]


def setup(min_beats: int = 50) -> tuple[Federation, OSELM, np.random.Generator]:
    learner = OSELM(HiddenLayer.generate(5, 12, seed=4), C=1.0)
    fed = Federation(
        learner,
        node_id="n1",
        key=Ed25519PrivateKey.generate(),
        model_hash=MODEL,
        min_beats=min_beats,
    )
    return fed, learner, np.random.default_rng(0)


def learn(learner: OSELM, rng: np.random.Generator, n: int) -> None:
    for _ in range(n):
        learner.learn_one(rng.normal(size=5), int(rng.integers(0, 4)))


def test_a_round_waits_for_min_beats_then_sends_the_difference() -> None:
    fed, learner, rng = setup()
    agg = Ed25519PrivateKey.generate()
    learn(learner, rng, 30)
    assert fed.announce(announce(agg, 1)).accepted
    assert fed.answer() is None  # 30 < 50: nothing leaves the device
    learn(learner, rng, 25)
    first = fed.answer()
    assert first is not None and first.round == 1 and first.n_samples == 55
    assert fed.answered_round == 1
    # It verifies with the device's key through the strict parser.
    parsed = parse_update(first.to_bytes(), public_key=fed.key.public_key())
    np.testing.assert_allclose(parsed.statistics().U, learner.statistics().U)
    # Round 2 carries only the beats learned after round 1.
    learn(learner, rng, 60)
    fed.announce(announce(agg, 2))
    second = fed.answer()
    assert second is not None and second.n_samples == 60
    total = first.statistics() + second.statistics()
    np.testing.assert_allclose(total.U, learner.statistics().U, atol=1e-9)
    assert total.class_counts.sum() == 115


def test_a_round_is_answered_once_and_older_rounds_are_ignored() -> None:
    fed, learner, rng = setup()
    agg = Ed25519PrivateKey.generate()
    learn(learner, rng, 60)
    fed.announce(announce(agg, 3))
    assert fed.answer() is not None
    learn(learner, rng, 60)
    assert not fed.announce(announce(agg, 3)).accepted
    assert not fed.announce(announce(agg, 2)).accepted
    assert fed.answer() is None
    other = announce(agg, 4, model_hash="sha256:" + "cd" * 32)
    assert not fed.announce(other).accepted


def test_the_announced_min_beats_is_respected_when_larger() -> None:
    fed, learner, rng = setup(min_beats=10)
    learn(learner, rng, 60)
    fed.announce(announce(Ed25519PrivateKey.generate(), 1, min_beats=100))
    assert fed.answer() is None


def test_a_passed_deadline_drops_the_round() -> None:
    fed, learner, rng = setup()
    fed.announce(announce(Ed25519PrivateKey.generate(), 1))
    learn(learner, rng, 60)
    assert fed.answer(now=NOW + dt.timedelta(hours=1)) is None
    assert fed.pending is None


def test_beta_kind_sends_the_local_weights() -> None:
    fed, learner, rng = setup()
    learn(learner, rng, 70)
    fed.announce(announce(Ed25519PrivateKey.generate(), 1, kind="beta", strategy="fedavg"))
    update = fed.answer()
    assert update is not None and update.kind == "beta" and update.n_samples == 70
    np.testing.assert_array_equal(update.beta, learner.beta_)


def global_model(agg: Ed25519PrivateKey, rnd: int, learner: OSELM, stats: bool) -> GlobalModel:
    s = learner.statistics()
    arrays = {"beta": s.solve(learner.C)}
    if stats:
        arrays |= {"U": s.U * 2, "V": s.V * 2}
    return GlobalModel.create(
        agg,
        round=rnd,
        model_hash=MODEL,
        strategy="exact",
        arrays=arrays,
        n_samples=2 * s.n,
        contributors=["n1", "n2"],
        ledger_height=rnd,
    )


def test_adoption_keeps_beats_learned_after_the_update() -> None:
    fed, learner, rng = setup()
    agg = Ed25519PrivateKey.generate()
    learn(learner, rng, 60)
    fed.announce(announce(agg, 1))
    update = fed.answer()
    assert update is not None
    gm = global_model(agg, 1, learner, stats=True)  # pooled = twice our statistics
    learn(learner, rng, 7)  # learned after the update, before the global model arrives
    since = fed.since_last_round()
    assert fed.adopt(gm).accepted
    np.testing.assert_allclose(learner.statistics().U, gm.statistics().U + since.U)  # type: ignore[union-attr]
    assert fed.beats_since_last_round() == 7
    assert fed.adopted_round == 1


def test_older_or_foreign_global_models_are_refused() -> None:
    fed, learner, rng = setup()
    agg = Ed25519PrivateKey.generate()
    learn(learner, rng, 60)
    assert fed.adopt(global_model(agg, 5, learner, stats=False)).accepted
    beta = learner.beta_.copy()
    assert not fed.adopt(global_model(agg, 5, learner, stats=False)).accepted
    assert not fed.adopt(global_model(agg, 4, learner, stats=False)).accepted
    np.testing.assert_array_equal(learner.beta_, beta)
    assert fed.adopted_round == 5
