"""Nothing is lost: the broker restarted under load, the agent process killed mid-stream."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from smfel.agent import topics
from smfel.agent.keys import Ed25519PrivateKey
from smfel.agent.protocol import Update, parse_update
from smfel.agent.transport import MessageProperties, MqttConfig, MqttTransport, Outbox
from tests.support.broker import MosquittoBroker

pytestmark = [pytest.mark.broker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
KEY = Ed25519PrivateKey.generate()


class DedupReceiver:
    """Subscribes with a persistent session and keeps each envelope id once."""

    def __init__(self, broker: MosquittoBroker, client_id: str = "receiver") -> None:
        self.first: dict[str, int] = {}  # envelope id -> round
        self.deliveries = 0
        self.lock = threading.Lock()
        self.statuses: queue.Queue[bytes] = queue.Queue()
        cfg = MqttConfig(broker.host, broker.port, client_id, backoff_min=0.05, backoff_max=0.5)
        self.transport = MqttTransport(cfg)

    def on_update(self, topic: str, payload: bytes, props: MessageProperties) -> None:
        u = parse_update(payload)  # the default limits: real, checked envelopes
        with self.lock:
            self.deliveries += 1
            self.first.setdefault(u.envelope_id, u.round)

    def rounds(self) -> list[int]:
        with self.lock:
            return sorted(self.first.values())

    def wait_for(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.first) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    def __enter__(self) -> DedupReceiver:
        self.transport.start()
        self.transport.wait_connected(10)
        self.transport.subscribe(topics.UPDATES_ALL, self.on_update)
        self.transport.subscribe(topics.STATUS_ALL, lambda t, p, m: self.statuses.put(p))
        return self

    def __exit__(self, *exc: object) -> None:
        self.transport.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as b:
        yield b


def test_broker_restarts_while_publishing_1000_updates(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    updates = [
        Update.create(
            KEY,
            node_id="dev-1",
            round=i,
            kind="beta",
            arrays={"beta": np.full((16, 4), i / 7)},
            n_samples=60,
            local_accuracy=0.5,
            model_hash="sha256:" + "0" * 64,
        )
        for i in range(1000)
    ]
    cfg = MqttConfig(broker.host, broker.port, "dev-1", backoff_min=0.05, backoff_max=0.5)
    queued = threading.Semaphore(0)

    def produce(agent: MqttTransport) -> None:
        for u in updates:
            agent.publish(topics.update("dev-1"), u.to_bytes(), durable=True)
            queued.release()

    with (
        DedupReceiver(broker) as rx,
        MqttTransport(cfg, outbox_path=tmp_path / "o.sqlite") as agent,
    ):
        agent.wait_connected(10)
        producer = threading.Thread(target=produce, args=(agent,), name="producer")
        producer.start()
        for restart_after in (250, 300):  # two restarts, the second after a pause offline
            for _ in range(restart_after):
                queued.acquire(timeout=30)
            broker.stop()
            time.sleep(0.3 * (restart_after == 300))
            broker.start()
        producer.join(60)
        assert agent.wait_for_outbox_empty(60)
        rx.wait_for(1000, 60)
        assert agent.counters["disconnects"] >= 2
    assert rx.rounds() == list(range(1000))  # every update arrived, each id kept once
    assert rx.deliveries >= 1000


def _agent(tmp_path: Path, port: int, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Logs go to a file, apart from the protocol lines on stdout; the child keeps its own fd.
    with (tmp_path / "agent.log").open("a") as log:
        return _spawn(env, log, port, tmp_path, args)


def _spawn(
    env: dict[str, str], log: IO[str], port: int, tmp_path: Path, args: tuple[str, ...]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.transport.agent_process",
            "--port",
            str(port),
            "--outbox",
            str(tmp_path / "agent-outbox.sqlite"),
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )


def _end(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def _read_until(proc: subprocess.Popen[str], predicate: object, lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())
        if callable(predicate) and predicate(line.strip()):
            return
    raise AssertionError(f"agent ended before the expected line; output: {lines[-5:]}")


def test_agent_killed_mid_stream_replays_what_was_not_acknowledged(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    with DedupReceiver(broker) as rx:
        lines: list[str] = []
        a = _agent(tmp_path, broker.port, "--start", "0", "--count", "300")
        try:
            _read_until(a, lambda s: s == "queued 50", lines)
            broker.stop()  # the agent keeps storing updates it cannot send
            _read_until(a, lambda s: s == "queued 150", lines)
            a.send_signal(signal.SIGKILL)
            a.wait(10)
        finally:
            _end(a)
        assert a.returncode == -signal.SIGKILL
        stored = {int(s.split()[1]) for s in lines if s.startswith("queued ")}
        with Outbox(tmp_path / "agent-outbox.sqlite") as box:
            unacknowledged = len(box)
        assert unacknowledged >= 50  # a backlog: what was stored while the broker was away

        broker.start()
        b = _agent(tmp_path, broker.port, "--start", "300", "--count", "20", "--linger")
        more: list[str] = []
        try:
            _read_until(b, lambda s: s == "drained", more)
            assert more[0] == f"replaying {unacknowledged}"
            rx.wait_for(len(stored) + 20, 30)
            got = rx.rounds()
            assert set(got) >= stored | set(range(300, 320))
            assert set(got) <= set(range(320))
            assert len(got) == len(set(got))
            # killing a connected agent makes the broker publish its Last Will
            while not rx.statuses.empty():
                rx.statuses.get_nowait()
            b.send_signal(signal.SIGKILL)
            b.wait(10)
            assert rx.statuses.get(timeout=10) == b"offline"
        finally:
            _end(b)
