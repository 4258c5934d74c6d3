"""End to end with real parts: a pseudo-terminal sends serial frames of a real MIT-BIH record
with its labels -> ``smfel-agent run`` (a subprocess, config file) -> a real Mosquitto -> a
subscriber sees telemetry, alerts, Home Assistant discovery and a signed update for the round
the test announced; the agent adopts a correctly signed global model and refuses forged and
older ones."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from smfel.agent import topics
from smfel.agent.codec import canonical_json
from smfel.agent.keys import Ed25519PrivateKey
from smfel.agent.keystore import KeyStore
from smfel.agent.protocol import GlobalModel, RoundAnnouncement, parse_update
from tests.agent.conftest import Issuer
from tests.agent.feeder import PtyFeeder, frames
from tests.agent.peer import AgentProcess, Peer, json_where, wait_file_json
from tests.support.broker import MosquittoBroker

pytestmark = [pytest.mark.mitdb, pytest.mark.broker, pytest.mark.slow]

NODE = "bed-7"


def site_file(tmp_path: Path, issuer: Issuer, source: str, broker: MosquittoBroker) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f"""board = "x86-sim"
[node]
id = "{NODE}"
[source]
url = "{source}"
[model]
bundle = "{issuer.bundle_dir}"
trusted_keys = ["{issuer.pub_file}"]
[mqtt]
host = "{broker.host}"
port = {broker.port}
[learning]
min_beats = 50
checkpoint_every = 100
[telemetry]
interval = 0.3
home_assistant = true
[alerts]
v_per_minute = 5.0
[state]
directory = "{tmp_path / "state"}"
"""
    )
    return path


def announcement(issuer: Issuer, rnd: int) -> RoundAnnouncement:
    return RoundAnnouncement.create(
        issuer.key,
        round=rnd,
        model_hash=issuer.bundle.model_hash,
        strategy="exact",
        kind="stats",
        deadline=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10),
        C=1.0,
        class_weight=(1.0, 1.0, 1.0, 1.0),
        min_beats=50,
    )


def global_model(key: Ed25519PrivateKey, issuer: Issuer, rnd: int, beta: np.ndarray) -> GlobalModel:
    return GlobalModel.create(
        key,
        round=rnd,
        model_hash=issuer.bundle.model_hash,
        strategy="fedavg",
        arrays={"beta": beta},
        n_samples=100,
        contributors=[NODE],
        ledger_height=rnd,
    )


def rejected_because(reason: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: reason in status["last_reject_reason"]


def test_serial_ecg_to_signed_update_and_global_model(
    mitdb: Path, tmp_path: Path, issuer: Issuer, mosquitto: MosquittoBroker
) -> None:
    feeder = PtyFeeder(frames(mitdb, "119", 300.0))
    agent = AgentProcess(
        site_file(tmp_path, issuer, f"serial://{feeder.path}?format=frame&baud=115200", mosquitto),
        tmp_path / "agent.log",
    )
    state = tmp_path / "state"
    with Peer(mosquitto.host, mosquitto.port, ("smfel/v1/#", "homeassistant/#")) as peer:
        try:
            peer.publish(topics.ROUND, announcement(issuer, 1).to_bytes(), retain=True)
            agent.start()
            birth = json.loads(peer.wait(f"nodes/{NODE}/status", 30, json_where(state="online")))
            assert birth["model"] == issuer.bundle.model_hash
            feeder.start()

            # The signed update for the announced round, verifiable with the device's key.
            raw = peer.wait(f"fl/updates/{NODE}", 60)
            device_key = KeyStore(state).load().public_key()
            update = parse_update(raw, public_key=device_key)
            assert (update.round, update.kind, update.node_id) == (1, "stats", NODE)
            assert update.model_hash == issuer.bundle.model_hash
            assert update.n_samples >= 50
            assert set(update.arrays) == {"U", "V", "class_counts"}

            # Telemetry: flat JSON with units and ts; alerts from the ventricular ectopy of 119.
            tele = json.loads(
                peer.wait(f"nodes/{NODE}/telemetry", 30, lambda p: json.loads(p)["beats"] > 0)
            )
            assert {
                "ts",
                "hr_bpm",
                "v_per_min",
                "n_per_min",
                "rss_mb",
                "model_round",
                "src_crc_errors",
            } <= set(tele)
            assert all(not isinstance(v, dict | list) for v in tele.values())
            assert 30 < (tele["hr_bpm"] or 0) < 200
            event = json.loads(peer.wait(f"nodes/{NODE}/events", 60))
            assert event["kind"] in ("v_run", "v_rate", "v_run_end") and "ts" in event
            discovery = peer.wait("hr_bpm/config", 10)
            assert json.loads(discovery)["state_topic"] == topics.telemetry(NODE)

            # A correctly signed global model is adopted...
            stats = update.statistics()
            beta = stats.solve(1.0)
            good = global_model(issuer.key, issuer, 1, beta)
            peer.publish(topics.GLOBAL, good.to_bytes(), retain=True)
            wait_file_json(state / "status.json", lambda s: s["last_adopted_round"] == 1, 30)
            peer.wait(f"nodes/{NODE}/telemetry", 30, json_where(model_round=1))

            # ...a newer one with a forged signature (trusted key id, attacker's signature),
            # one signed by an unknown key and an older correctly signed one are refused.
            attacker = Ed25519PrivateKey.generate()
            forged = json.loads(global_model(issuer.key, issuer, 2, beta * 0).to_bytes())
            forged["signature"] = json.loads(
                global_model(attacker, issuer, 2, beta * 0).to_bytes()
            )["signature"]
            for payload, reason in (
                (canonical_json(forged), "bad_signature"),
                (global_model(attacker, issuer, 3, beta * 0).to_bytes(), "unknown_key"),
                (global_model(issuer.key, issuer, 0, beta * 0).to_bytes(), "not newer"),
            ):
                peer.publish(topics.GLOBAL, payload, retain=True)
                wait_file_json(state / "status.json", rejected_because(reason), 30)
            status = json.loads((state / "status.json").read_text())
            assert status["last_adopted_round"] == 1
            assert status["globals_rejected"] >= 3
            assert status["rounds_answered"] == 1

            # No raw ECG leaves the device: nothing the node published carries samples.
            for topic, payload in peer.messages:
                if f"/{NODE}/" in topic and not topic.startswith("smfel/v1/fl/updates"):
                    assert len(payload) < 4096, topic

            assert agent.terminate() == 0
            peer.wait(f"nodes/{NODE}/status", 15, json_where(state="offline"))
        finally:
            agent.ensure_dead()
            feeder.close()
    log = agent.log_text()
    assert "Traceback" not in log, log[-3000:]
