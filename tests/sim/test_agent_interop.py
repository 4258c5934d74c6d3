"""The real agent daemon and the real aggregation service over a real Mosquitto: the agent
answers announced rounds with signed updates that the aggregator accepts, and adopts the signed
global models the aggregator publishes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from smfel.agent.bundle import load_bundle
from smfel.agent.daemon.config import (
    AgentConfig,
    LearningConfig,
    ModelConfig,
    MqttConfig,
    NodeConfig,
    SourceConfig,
    StateConfig,
)
from smfel.agent.daemon.service import Agent
from smfel.agent.keys import Ed25519PrivateKey, key_id, public_key_raw
from smfel.aggregator.config import (
    AggregatorConfig,
    ModelSection,
    MqttSection,
    RoundsSection,
    ServiceSection,
)
from smfel.aggregator.model import calibration_features, init_model
from smfel.aggregator.registry import parse_enrolment
from smfel.aggregator.service import Aggregator
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.broker

WEIGHTS = (1.0, 10.0, 4.0, 10.0)


def test_agent_daemon_and_aggregator_complete_rounds(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    issuer = Ed25519PrivateKey.generate()
    init_model(
        tmp_path / "model", calibration_features(seconds=60.0), signing_key=issuer, n_hidden=64
    )
    cfg = AggregatorConfig(
        service=ServiceSection(state_dir=str(tmp_path / "agg")),
        model=ModelSection(bundle=str(tmp_path / "model"), C=1.0, class_weight=WEIGHTS),
        rounds=RoundsSection(strategy="exact", quorum=1, duration=60.0, max_rounds=2),
        mqtt=MqttSection(host=mosquitto.host, port=mosquitto.port),
    ).validate()
    agg = Aggregator(cfg, signing_key=issuer).start()
    node_key = Ed25519PrivateKey.generate()
    assert agg.registry is not None
    agg.registry.add(
        parse_enrolment(
            {
                "node_id": "dev-1",
                "key_id": key_id(node_key),
                "public_key": base64.b64encode(public_key_raw(node_key.public_key())).decode(),
            }
        )
    )
    trusted = {key_id(issuer): issuer.public_key()}
    agent = Agent(
        AgentConfig(
            node=NodeConfig(id="dev-1"),
            source=SourceConfig(
                url="synthetic://?hr=80&pvc=0.1&apc=0.05&seed=5&speed=0&duration=600"
            ),
            model=ModelConfig(bundle="", bundle_topic=False),
            mqtt=MqttConfig(host=mosquitto.host, port=mosquitto.port),
            learning=LearningConfig(C=1.0, class_weight=WEIGHTS, min_beats=50),
            state=StateConfig(directory=str(tmp_path / "agent")),
        ),
        node_key=node_key,
        trusted_keys=trusted,
        bundle=load_bundle(tmp_path / "model", trusted),
    )
    agent.start()
    try:
        assert agg.finished.wait(90), "two rounds did not close"
        assert agent.state.wait_for(lambda s: s.last_adopted_round >= 2, 30)
    finally:
        agent.stop()
        agg.stop()
    assert [r.round for r in agg.results] == [1, 2]
    for r in agg.results:
        assert [a[0] for a in r.accepted] == ["dev-1"]
        assert r.rejected == ()
        assert r.state is not None
    assert agent.state.globals_rejected == 0
    assert agent.state.last_answered_round == 2
