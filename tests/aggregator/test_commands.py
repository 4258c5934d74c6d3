"""The aggregator's command line: model init, nodes add|rotate|revoke|list with ledger events,
and configuration errors reported one line per key with exit code 78."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from smfel.agent.bundle import load_bundle
from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.agent.keystore import Enrolment
from smfel.agent.protocol import parse_round
from smfel.agent.transport import MessageProperties, MqttConfig, MqttTransport
from smfel.aggregator.ledger import Ledger
from smfel.aggregator.model import load_or_create_key
from tests.support.broker import MosquittoBroker

BIN = str(Path(sys.executable).parent / "smfel-aggregator")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN, "--log-level", "WARNING", *args], capture_output=True, text=True, timeout=120
    )


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "aggregator.toml"
    path.write_text(
        '[service]\nstate_dir = "state"\n\n[model]\nbundle = "model"\n\n'
        '[rounds]\nstrategy = "exact"\n'
    )
    return path


def test_model_init_writes_a_bundle_signed_by_the_service_key(tmp_path: Path) -> None:
    key_file = tmp_path / "state" / "aggregator.key"
    out = _run(
        "model",
        "init",
        "--out",
        str(tmp_path / "model"),
        "--key",
        str(key_file),
        "--hidden",
        "32",
        "--seconds",
        "60",
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["n_hidden"] == 32
    assert info["calibration_beats"] > 50
    key = load_or_create_key(key_file)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    bundle = load_bundle(tmp_path / "model", {key_id(key): key.public_key()})
    assert bundle.model_hash == info["model_hash"]
    assert bundle.hidden.n_hidden == 32


def test_nodes_lifecycle_is_recorded_in_the_ledger(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    k1, k2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    first = tmp_path / "enrol-1.json"
    first.write_text(Enrolment.of("dev-1", k1).to_json())
    second = tmp_path / "enrol-2.json"
    second.write_text(Enrolment.of("dev-1", k2).to_json())
    assert _run("nodes", "add", "--config", str(cfg), str(first)).returncode == 0
    again = _run("nodes", "add", "--config", str(cfg), str(first))
    assert again.returncode == 65
    assert "already enrolled" in again.stderr
    assert _run("nodes", "rotate", "--config", str(cfg), str(second)).returncode == 0
    assert (
        _run("nodes", "revoke", "--config", str(cfg), "dev-1", "--reason", "lost").returncode == 0
    )
    listing = json.loads(_run("nodes", "list", "--config", str(cfg)).stdout)
    assert listing[0]["node_id"] == "dev-1"
    assert listing[0]["status"] == "revoked"
    with Ledger.open(f"sqlite:///{tmp_path / 'state' / 'ledger.sqlite'}") as ledger:
        events = [json.loads(e.data) for b in ledger.blocks() for e in b.entries]
    assert [(e["event"], e["key_id"]) for e in events] == [
        ("enrol", key_id(k1)),
        ("rotate", key_id(k2)),
        ("revoke", key_id(k2)),
    ]


def test_bad_config_is_reported_per_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[rounds]\nstrategy = "krum"\nquorum = 0\n[mqtt]\nport = "x"\n[extra]\na = 1\n')
    out = _run("serve", "--config", str(cfg))
    assert out.returncode == 78
    lines = out.stderr.strip().splitlines()
    assert any("rounds.strategy" in line and "exact" in line for line in lines)
    assert any("rounds.quorum" in line for line in lines)
    assert any("mqtt.port" in line for line in lines)
    assert any("extra: unknown section" in line for line in lines)
    assert any("model.bundle" in line for line in lines)


@pytest.mark.broker
def test_serve_announces_a_signed_round_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    key_file = tmp_path / "state" / "aggregator.key"
    init = _run(
        "model",
        "init",
        "--out",
        str(tmp_path / "model"),
        "--key",
        str(key_file),
        "--hidden",
        "16",
        "--seconds",
        "30",
    )
    assert init.returncode == 0, init.stderr
    cfg = tmp_path / "aggregator.toml"
    cfg.write_text(
        '[service]\nstate_dir = "state"\n\n[model]\nbundle = "model"\n\n'
        f'[rounds]\nstrategy = "fedavg"\nduration = 600\n\n'
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
    )
    proc = subprocess.Popen(
        [BIN, "serve", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    got: list[bytes] = []
    seen = threading.Event()

    def on_round(topic: str, payload: bytes, props: MessageProperties) -> None:
        got.append(payload)
        seen.set()

    client = MqttTransport(
        MqttConfig(mosquitto.host, mosquitto.port, "watcher", clean_start=True, session_expiry=0)
    ).start()
    client.subscribe("smfel/v1/fl/round", on_round)
    try:
        assert seen.wait(60), "no round announcement"
    finally:
        client.stop()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    key = load_or_create_key(key_file)
    ann = parse_round(got[0], public_key=key.public_key())
    assert ann.round == 1
    assert ann.strategy == "fedavg"
    assert ann.kind == "beta"
    assert ann.model_hash == json.loads(init.stdout)["model_hash"]
