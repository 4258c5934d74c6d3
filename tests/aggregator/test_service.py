"""The running service against a real Mosquitto: crafted bad updates over the broker are each
rejected and recorded in the ledger with their reason, the service stays alive, and a round with
good updates closes with a signed global model equal to the exact solution."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smfel.agent.codec import array_from_wire, canonical_json
from smfel.agent.keys import Ed25519PrivateKey, key_id, verify_bytes
from smfel.agent.transport import MqttConfig, MqttTransport
from smfel.aggregator.config import (
    AggregatorConfig,
    ModelSection,
    MqttSection,
    RoundsSection,
    ServiceSection,
)
from smfel.aggregator.ledger import Ledger
from smfel.aggregator.model import calibration_features, init_model
from smfel.aggregator.registry import Registry
from smfel.aggregator.rounds import RoundResult
from smfel.aggregator.service import Aggregator, key_event_recorder
from smfel.aggregator.strategies import AcceptedUpdate, Exact
from tests.aggregator import crafting as wire
from tests.aggregator.crafting import CLASSES, WEIGHTS, C, enrol, learner, stats_update
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.broker


def _setup(tmp_path: Path, broker: MosquittoBroker, **rounds: Any) -> tuple[AggregatorConfig, Any]:
    key = Ed25519PrivateKey.generate()
    X = calibration_features(seconds=60.0)
    issued = init_model(tmp_path / "model", X, signing_key=key, n_hidden=16, seed=2)
    cfg = AggregatorConfig(
        service=ServiceSection(state_dir=str(tmp_path / "state")),
        model=ModelSection(
            bundle=str(tmp_path / "model"), classes=CLASSES, C=C, class_weight=WEIGHTS
        ),
        rounds=RoundsSection(**{"strategy": "exact", "duration": 60.0, "quorum": 2, **rounds}),
        mqtt=MqttSection(host=broker.host, port=broker.port, topic_prefix="t/smfel"),
    ).validate()
    return cfg, (key, issued)


def _enrol(cfg: AggregatorConfig, key: Ed25519PrivateKey, nodes: list[str]) -> dict[str, Any]:
    (Path(cfg.service.state_dir)).mkdir(parents=True, exist_ok=True)
    with Ledger.open(cfg.service.ledger_url(), signing_keys=[key]) as ledger:
        reg = Registry(cfg.service.path(cfg.service.registry), on_event=key_event_recorder(ledger))
        with reg:
            return {n: enrol(reg, n) for n in nodes}


def _wait(pred: Any, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_crafted_bad_updates_are_rejected_recorded_and_survived(
    tmp_path: Path, mosquitto: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, (agg_key, issued) = _setup(tmp_path, mosquitto, max_payload=100_000)
    monkeypatch.setattr(wire, "MODEL", issued.model_hash)
    keys = _enrol(cfg, agg_key, ["a", "b", "gone"])
    with Registry(cfg.service.path(cfg.service.registry)) as reg:
        reg.revoke("gone")  # (no ledger here: the event is tested elsewhere)
    hidden = issued.hidden
    results: list[RoundResult] = []
    agg = Aggregator(cfg, signing_key=agg_key, on_round=results.append).start()
    client = MqttTransport(
        MqttConfig(mosquitto.host, mosquitto.port, "crafter", clean_start=True, session_expiry=0)
    ).start()
    client.wait_connected()
    globals_seen: list[bytes] = []
    client.subscribe("t/smfel/fl/global", lambda t, p, _props: globals_seen.append(p))

    def send(topic: str, payload: bytes) -> None:
        client.publish(topic, payload, timeout=10.0)  # waits for the PUBACK

    try:
        assert agg.current_round == 1
        la, lb = learner(hidden, 1), learner(hidden, 2)
        good_a = stats_update(keys["a"], "a", 1, la)
        st = la.statistics()

        def arrays_update(**arrays: Any) -> dict[str, Any]:
            base = {"U": st.U, "V": st.V, "class_counts": st.class_counts, **arrays}
            return wire.update(
                keys["a"], node_id="a", round=1, kind="stats", n_samples=st.n, arrays=base
            )

        nan_u = st.U.copy()
        nan_u[3, 3] = np.nan
        forged = dict(good_a)
        forged["signature"] = wire.sign({"x": 1}, Ed25519PrivateKey.generate())["signature"]
        crafted: dict[str, tuple[str, bytes]] = {
            "bad_signature": ("a", wire.encode(forged)),
            "unknown_key": (
                "a",
                wire.encode(stats_update(Ed25519PrivateKey.generate(), "a", 1, la)),
            ),
            "revoked_key": ("gone", wire.encode(stats_update(keys["gone"], "gone", 1, la))),
            "wrong_round": ("a", wire.encode(stats_update(keys["a"], "a", 9, la))),
            "not_finite": ("a", wire.encode(arrays_update(U=nan_u))),
            "bad_shape": ("a", wire.encode(arrays_update(V=st.V[:, :3]))),
            "too_few_beats": (
                "a",
                wire.encode(stats_update(keys["a"], "a", 1, learner(hidden, 3, n=10))),
            ),
            "oversize": ("a", b"{" + b" " * 100_001 + b"}"),
        }
        for node, payload in crafted.values():
            send(f"t/smfel/fl/updates/{node}", payload)
        # the good update, then its replay (same nonce), then the second node
        send("t/smfel/fl/updates/a", wire.encode(good_a))
        _wait(lambda: agg._round is not None and "a" in agg._round.accepted)
        send("t/smfel/fl/updates/a", wire.encode(good_a))
        _wait(lambda: agg._round is not None and len(agg._round.rejected) == len(crafted) + 1)
        send("t/smfel/fl/updates/b", wire.encode(stats_update(keys["b"], "b", 1, lb)))
        _wait(lambda: len(results) == 1)
        # alive: round 2 opens and still takes updates
        _wait(lambda: agg.current_round == 2)
        assert agg.errors == 0
        send(
            "t/smfel/fl/updates/a", wire.encode(stats_update(keys["a"], "a", 2, learner(hidden, 7)))
        )
        _wait(lambda: agg._round is not None and "a" in agg._round.accepted)
        _wait(lambda: len(globals_seen) >= 1)
    finally:
        client.stop()
        agg.stop()

    r1 = results[0]
    reasons = {reason for _, _, reason in r1.rejected}
    assert reasons == {*crafted, "replayed_nonce"}
    assert {n for n, _, _ in r1.accepted} == {"a", "b"}
    # the global model equals the exact solution of the two accepted updates
    ups = [
        AcceptedUpdate(n, 1, "stats", s.n, n, {"U": s.U, "V": s.V, "class_counts": s.class_counts})
        for n, s in (("a", la.statistics()), ("b", lb.statistics()))
    ]
    ref = Exact(C=C).aggregate(ups, None)
    assert ref is not None
    env = json.loads(globals_seen[-1])
    body = {k: v for k, v in env.items() if k != "signature"}
    assert env["key_id"] == key_id(agg_key)
    assert verify_bytes(agg_key.public_key(), canonical_json(body), env["signature"])
    assert env["round"] == 1
    np.testing.assert_allclose(array_from_wire(env["arrays"]["beta"]), ref.beta, atol=1e-12)
    # the ledger block of round 1 records every rejection with its reason
    with Ledger.open(cfg.service.ledger_url()) as ledger:
        blocks = [b for b in ledger.blocks() if b.header.kind == "round"]
        entries = [json.loads(e.data) for e in blocks[0].entries]
    assert blocks[0].header.round == 1
    recorded = {e["reason"] for e in entries if e["type"] == "rejected"}
    assert recorded == reasons
    assert {e["node"] for e in entries if e["type"] == "accepted"} == {"a", "b"}
