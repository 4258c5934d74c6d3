"""Control messages to a running agent (in-process, real Mosquitto): a model bundle over MQTT,
garbage on every control topic, label feedback, and a configuration reload."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from smfel.agent import topics
from smfel.agent.bundle import bundle_to_bytes
from smfel.agent.cli import main
from smfel.agent.daemon.config import (
    AgentConfig,
    AlertsConfig,
    ModelConfig,
    MqttConfig,
    NodeConfig,
    SourceConfig,
    StateConfig,
    TelemetryConfig,
)
from smfel.agent.daemon.service import Agent
from smfel.agent.daemon.state import AgentState
from tests.agent.conftest import Issuer
from tests.agent.peer import Peer
from tests.support.broker import MosquittoBroker

pytestmark = [pytest.mark.broker, pytest.mark.mitdb]

NODE = "ctl-1"


def more_labelled_than(n: int) -> Callable[[AgentState], bool]:
    return lambda s: s.beats_labelled > n


def config(tmp_path: Path, broker: MosquittoBroker) -> AgentConfig:
    return AgentConfig(
        node=NodeConfig(id=NODE),
        source=SourceConfig(url="synthetic://?hr=80&pvc=0.1&seed=3&speed=4"),
        model=ModelConfig(bundle="", bundle_topic=True),
        mqtt=MqttConfig(host=broker.host, port=broker.port),
        telemetry=TelemetryConfig(interval=0.2),
        state=StateConfig(directory=str(tmp_path / "state")),
    )


def test_bundle_over_mqtt_bad_messages_labels_and_reload(
    tmp_path: Path, issuer: Issuer, mosquitto: MosquittoBroker
) -> None:
    agent = Agent(config(tmp_path, mosquitto), trusted_keys=issuer.trusted)  # type: ignore[arg-type]
    st = agent.state
    with Peer(mosquitto.host, mosquitto.port) as peer:
        agent.start()
        try:
            assert st.wait_for(lambda s: s.phase == "waiting-for-model" and s.beats > 0, 30)
            # A tampered archive is refused, the agent keeps waiting.
            archive = json.loads(bundle_to_bytes(issuer.bundle_dir))
            bad = dict(archive, files=dict(archive["files"]))
            bad["files"]["hidden.json"] = archive["files"]["hidden.json"][:-8] + "AAAAAAA="
            peer.publish(topics.BUNDLE, json.dumps(bad).encode(), retain=True)
            assert st.wait_for(lambda s: "model bundle" in s.last_reject_reason, 30)
            assert agent.learner is None
            # The signed archive is verified, installed and kept in the state directory.
            peer.publish(topics.BUNDLE, bundle_to_bytes(issuer.bundle_dir), retain=True)
            assert st.wait_for(lambda s: s.model_hash == issuer.bundle.model_hash, 30)
            assert st.wait_for(lambda s: s.phase == "running" and s.beats_learned > 5, 30)
            assert (tmp_path / "state" / "bundle" / "manifest.json").is_file()

            # Garbage on every control topic: counted, never fatal.
            before = st.messages_rejected
            for topic in (topics.ROUND, topics.GLOBAL, topics.labels(NODE)):
                peer.publish(topic, b"\xff not json")
            assert st.wait_for(lambda s: s.messages_rejected >= before + 3, 30)

            # A clinician's label for a recent beat is learned.
            sample, when, _h = agent._recent[-1]
            for message in ({"sample": sample, "label": "V"}, {"time": when, "label": "S"}):
                learned = st.beats_learned
                labelled = st.beats_labelled
                peer.publish(topics.labels(NODE), json.dumps(message).encode())
                assert st.wait_for(more_labelled_than(labelled), 30)
                assert st.beats_learned > learned

            # SIGHUP's reload: alert thresholds change at once; a broker change waits for a restart.
            new = dataclasses.replace(
                agent.config,
                alerts=AlertsConfig(v_run=5, v_per_minute=2.0),
                mqtt=MqttConfig(host="192.0.2.1", port=1883),
            )
            agent.request_reload(new)
            assert st.wait_for(lambda s: agent.alerts.config.v_run == 5, 30)
            assert agent.config.mqtt.host == mosquitto.host
            assert agent.config.alerts.v_per_minute == 2.0
            peer.wait(f"nodes/{NODE}/telemetry", 10, lambda p: json.loads(p)["state"] == "running")
        finally:
            agent.stop()
    assert st.phase == "stopped"
    assert [t.name for t in threading.enumerate() if t.name.startswith("smfel-agent")] == []


def test_selftest_reports_runtime_fallback_and_broker(
    tmp_path: Path,
    issuer: Issuer,
    mosquitto: MosquittoBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""board = "rpi4"
[node]
id = "selftest-1"
[state]
directory = "{tmp_path / "state"}"
[model]
bundle = "{issuer.bundle_dir}"
trusted_keys = ["{issuer.pub_file}"]
[runtime]
delegate = "{tmp_path / "libmissing_delegate.so"}"
[mqtt]
host = "{mosquitto.host}"
port = {mosquitto.port}
""",
    )
    assert main(["selftest", "--config", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    runtime = out["model"]["runtime"]
    assert runtime["delegate"] is None
    assert "libmissing_delegate.so" in runtime["fallback_reason"]
    assert runtime["selftest_latency_us"] > 0
    assert out["model"]["model_hash"] == issuer.bundle.model_hash
    assert out["broker"] == {"reachable": True, "error": None}
    mosquitto.stop()
    assert main(["selftest", "--config", str(path)]) == 69
    assert json.loads(capsys.readouterr().out)["broker"]["reachable"] is False


def test_tls_and_password_from_the_config(
    tmp_path: Path, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with MosquittoBroker(
        tmp_path_factory.mktemp("tls-broker"),
        users={"ward3-bed12": "s3cret"},
        allow_anonymous=True,
        tls=True,
    ) as broker:
        assert broker.tls_files is not None
        secret = tmp_path / "mqtt.password"
        secret.write_text("s3cret\n")
        cfg = dataclasses.replace(
            config(tmp_path, broker),
            model=ModelConfig(bundle=str(issuer.bundle_dir), bundle_topic=False),
            mqtt=MqttConfig(
                host="localhost",
                port=broker.tls_port,
                tls=True,
                ca_file=str(broker.tls_files.ca),
                username="ward3-bed12",
                password_file=str(secret),
            ),
        )
        agent = Agent(cfg, trusted_keys=issuer.trusted)  # type: ignore[arg-type]
        with Peer(broker.host, broker.port) as peer:
            agent.start()
            try:
                birth = peer.wait(f"nodes/{NODE}/status", 30, lambda p: b"online" in p)
                assert json.loads(birth)["model"] == issuer.bundle.model_hash
                peer.wait(f"nodes/{NODE}/telemetry", 30)
            finally:
                agent.stop()
