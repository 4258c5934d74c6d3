"""The service's worker takes what is queued in batches and records the outcome each update
gets on its own: a wrong topic does not count as accepted, a second update of a node is a
duplicate, and the round state moves update by update (no broker needed: the worker's queue is
filled directly)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from smfel.agent import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey
from smfel.aggregator.config import (
    AggregatorConfig,
    ModelSection,
    MqttSection,
    RoundsSection,
    ServiceSection,
)
from smfel.aggregator.pipeline import Limits, Verifier, VerifierBatch
from smfel.aggregator.rounds import OpenRound
from smfel.aggregator.service import BATCH, Aggregator
from tests.aggregator import crafting as wire
from tests.aggregator.crafting import CLASSES, WEIGHTS, C, enrol, learner, registry_at, stats_update

L = 16


def _aggregator(tmp_path: Path) -> Aggregator:
    cfg = AggregatorConfig(
        service=ServiceSection(state_dir=str(tmp_path / "state")),
        model=ModelSection(
            bundle=str(tmp_path / "model"), classes=CLASSES, C=C, class_weight=WEIGHTS
        ),
        rounds=RoundsSection(strategy="exact", duration=600.0, quorum=1000),
        mqtt=MqttSection(host="127.0.0.1", port=1, topic_prefix="t"),
    )
    return Aggregator(cfg, signing_key=Ed25519PrivateKey.generate())


def test_queued_updates_get_the_outcomes_they_get_one_by_one(tmp_path: Path) -> None:
    reg = registry_at(tmp_path)
    hidden = HiddenLayer.generate(5, L, seed=3)
    keys = {n: enrol(reg, n) for n in ("a", "b", "c")}
    lr = learner(hidden, 1)

    def fresh(node: str) -> bytes:
        return wire.encode(stats_update(keys[node], node, 1, lr))

    items = [
        ("t/fl/updates/b", fresh("a")),  # a's update on b's topic: bad_topic, not accepted
        ("t/fl/updates/a", fresh("a")),  # accepted: the refusal above did not count
        ("t/fl/updates/a", fresh("a")),  # duplicate
        ("t/fl/updates/b", b"{not json"),
        ("t/fl/updates/b", fresh("b")),
    ]
    items += [("t/fl/updates/c", fresh("c")) for _ in range(BATCH + 3)]  # more than one batch
    agg = _aggregator(tmp_path)
    agg.registry = reg
    limits = Limits(n_hidden=L, classes=CLASSES, class_weight=WEIGHTS, min_beats=50)
    agg.verifier = Verifier(reg, limits, "stats")
    now = time.time()
    agg._round = r = OpenRound(1, now, now + 600.0, quorum=1000)
    batches = []
    real_batch = agg.verifier.batch

    def counting_batch() -> VerifierBatch:
        batches.append(1)
        return real_batch()

    agg.verifier.batch = counting_batch  # type: ignore[method-assign]
    for item in items:
        agg._queue.put(item)
    worker = threading.Thread(target=agg._work)
    worker.start()
    deadline = time.time() + 60
    while len(r.accepted) + len(r.rejected) < len(items) and time.time() < deadline:
        time.sleep(0.01)
    agg._stop.set()
    agg._queue.put(None)
    worker.join(10)
    reg.close()
    assert not worker.is_alive()
    assert agg.errors == 0
    assert sorted(r.accepted) == ["a", "b", "c"]
    reasons = [reason for _, _, reason in r.rejected]
    assert reasons == ["bad_topic", "duplicate", "malformed"] + ["duplicate"] * (BATCH + 2)
    assert 2 <= len(batches) <= 4  # everything was queued: a few batches, not one per update
