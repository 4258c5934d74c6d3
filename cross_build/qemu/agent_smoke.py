"""Smoke run of the installed ``smfel-agent run`` under emulation, driven from the host.

The host plays the aggregator: it signs a model bundle, starts a real Mosquitto (natively), and
publishes a signed round announcement (retained). The emulated agent replays a real MIT-BIH
record as fast as it can, classifies and learns its labelled beats, and must publish a signed
update for the round; the host verifies the update's Ed25519 signature with the device key the
agent generated in its state directory, then stops the agent with SIGTERM and expects exit 0.

Usage (from the repository root, the host's venv Python, repo root on PYTHONPATH):
    python cross_build/qemu/agent_smoke.py WORKDIR MITDB BOARD_PROFILE -- EMULATOR... AGENT_PYTHON
where ``EMULATOR... AGENT_PYTHON`` is the command that runs the board's Python (the agent is
started as that Python running the venv's ``smfel-agent`` script, whose path is derived from it).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from smfel.agent import topics
from smfel.agent.bundle import load_bundle, write_bundle
from smfel.agent.daemon.keyfiles import public_key_pem
from smfel.agent.hidden import HiddenLayer
from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.agent.keystore import KeyStore
from smfel.agent.protocol import RoundAnnouncement, parse_update
from smfel.sensors.beats import N_FEATURES
from tests.support.broker import MosquittoBroker

NODE = "qemu-smoke"
RECORD = "119"
TIMEOUT = 240.0
# After the replay ended, the last beats are through the pipeline within seconds.
GRACE = 30.0


def wait_for_update(arrived: threading.Event, agent: subprocess.Popen[bytes], status: Path) -> str:
    """Empty when the update arrived; else why not (with the agent's status file)."""
    deadline = time.monotonic() + TIMEOUT
    ended_at: float | None = None
    while not arrived.wait(0.5):
        if agent.poll() is not None:
            return f"the agent exited with {agent.returncode} before publishing an update"
        now = time.monotonic()
        if ended_at is None and status.is_file():
            try:
                exhausted = json.loads(status.read_text()).get("source_exhausted")
            except ValueError:  # being replaced right now
                exhausted = False
            if exhausted:
                ended_at = now
        if now > deadline or (ended_at is not None and now > ended_at + GRACE):
            text = status.read_text() if status.is_file() else "(no status file)"
            return (
                f"no update {'after the replay ended' if ended_at else 'in time'}; status: {text}"
            )
    return ""


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    work, mitdb, board = Path(argv[0]), Path(argv[1]), argv[2]
    command = argv[sep + 1 :]
    agent_script = str(Path(command[-1]).parent / "smfel-agent")
    work.mkdir(parents=True, exist_ok=True)

    issuer = Ed25519PrivateKey.generate()
    (work / "aggregator.pub").write_text(public_key_pem(issuer))
    hidden = HiddenLayer.generate(N_FEATURES, 64, seed=3)
    write_bundle(work / "bundle", hidden, signing_key=issuer)
    model_hash = load_bundle(work / "bundle", {key_id(issuer): issuer.public_key()}).model_hash

    with MosquittoBroker(work / "broker") as broker:
        (work / "agent.toml").write_text(
            f'board = "{board}"\n'
            f'[node]\nid = "{NODE}"\n'
            f'[source]\nurl = "wfdb://{mitdb}/{RECORD}?speed=0&start=0&end=300"\n'
            f'[model]\nbundle = "{work / "bundle"}"\n'
            f'trusted_keys = ["{work / "aggregator.pub"}"]\nbundle_topic = false\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'[state]\ndirectory = "{work / "state"}"\n'
            "[learning]\nmin_beats = 50\n"
        )
        got: list[bytes] = []
        arrived = threading.Event()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            got.append(bytes(msg.payload))
            arrived.set()

        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="smoke-aggregator")
        client.on_message = on_message
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            client.subscribe(topics.update(NODE), qos=1)
            announcement = RoundAnnouncement.create(
                issuer,
                round=1,
                model_hash=model_hash,
                strategy="exact",
                kind="stats",
                deadline=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
                C=1.0,
                class_weight=(1.0, 1.0, 1.0, 1.0),
                min_beats=50,
            )
            client.publish(
                topics.ROUND, announcement.to_bytes(), qos=1, retain=True
            ).wait_for_publish(10)
            start = time.monotonic()
            agent = subprocess.Popen(
                [
                    *command,
                    agent_script,
                    "--log-level",
                    "INFO",
                    "run",
                    "--config",
                    str(work / "agent.toml"),
                ]
            )
            try:
                failure = wait_for_update(arrived, agent, work / "state" / "status.json")
                if failure:
                    print(f"agent smoke: {failure}", file=sys.stderr)
                    return 1
                print(f"agent smoke: signed update received after {time.monotonic() - start:.1f} s")
            finally:
                agent.send_signal(signal.SIGTERM)
                try:
                    rc = agent.wait(60)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    rc = agent.wait()
        finally:
            client.loop_stop()
            client.disconnect()
    device_key = KeyStore(work / "state").load().public_key()
    update = parse_update(got[0], public_key=device_key, n_hidden=64, n_classes=4)
    print(
        f"agent smoke: update for round {update.round} from {update.node_id}, "
        f"{update.n_samples} beats, signed by {update.key_id} (verified); agent exit {rc}"
    )
    return 0 if rc == 0 and update.round == 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
