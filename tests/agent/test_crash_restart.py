"""SIGKILL mid-run and restart: learning resumes from the last checkpoint, and the update that
was written to the outbox while the broker was away is delivered exactly once."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from smfel.agent import topics
from smfel.agent.daemon.checkpoint import read_checkpoint
from smfel.agent.keystore import KeyStore
from smfel.agent.protocol import parse_update
from tests.agent.conftest import Issuer
from tests.agent.feeder import PtyFeeder, frames
from tests.agent.peer import AgentProcess, Peer, json_where, wait_file_json
from tests.agent.test_end_to_end import NODE, announcement, site_file
from tests.support.broker import MosquittoBroker

pytestmark = [pytest.mark.mitdb, pytest.mark.broker, pytest.mark.slow]


def wait_for(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def outbox_updates(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        rows = db.execute("SELECT COUNT(*) FROM outbox WHERE topic = ?", (topics.update(NODE),))
        return int(rows.fetchone()[0])


def answered(ckpt: Path) -> bool:
    try:
        return read_checkpoint(ckpt).meta.get("answered_round") == 1
    except Exception:
        return False


def test_sigkill_then_restart_resumes_learning_and_replays_the_outbox(
    mitdb: Path, tmp_path: Path, issuer: Issuer, mosquitto: MosquittoBroker
) -> None:
    feeder = PtyFeeder(frames(mitdb, "208", 900.0), rate=60.0)
    config = site_file(tmp_path, issuer, f"serial://{feeder.path}?format=frame", mosquitto)
    state = tmp_path / "state"
    ckpt, outbox = state / "agent.ckpt", state / "outbox.sqlite"
    first = AgentProcess(config, tmp_path / "first.log")
    second = AgentProcess(config, tmp_path / "second.log")
    try:
        with Peer(mosquitto.host, mosquitto.port) as peer:
            peer.publish(topics.ROUND, announcement(issuer, 1).to_bytes(), retain=True)
            first.start()
            peer.wait(f"nodes/{NODE}/status", 30, json_where(state="online"))
            wait_for(lambda: "round 1 pending" in first.log_text(), 30, "the announcement")
        # The broker goes away; the agent learns enough beats and answers into its outbox.
        mosquitto.stop()
        feeder.start()
        wait_for(lambda: answered(ckpt) and outbox_updates(outbox) == 1, 60, "the update")
        first.kill()
        learned_at_kill = read_checkpoint(ckpt).learner.n_seen_
        assert learned_at_kill >= 50

        mosquitto.start()
        with Peer(mosquitto.host, mosquitto.port) as peer:
            second.start()
            raw = peer.wait(f"fl/updates/{NODE}", 30)
            update = parse_update(raw, public_key=KeyStore(state).load().public_key())
            assert update.round == 1 and update.n_samples >= 50
            assert "resuming from checkpoint" in second.log_text()
            # Learning goes on from the checkpoint, not from zero.
            status = wait_file_json(
                state / "status.json",
                lambda s: s["beats_learned"] > learned_at_kill + 100,
                60,
            )
            assert status["last_answered_round"] == 1
            wait_for(lambda: outbox_updates(outbox) == 0, 30, "the outbox to drain")
            # Exactly one update for round 1 reached the broker; no second answer was made.
            assert len(peer.on(f"fl/updates/{NODE}")) == 1
            assert status["rounds_answered"] == 0  # this process answered nothing itself
            assert second.terminate() == 0
        assert json.loads((state / "status.json").read_text())["phase"] == "stopped"
    finally:
        first.ensure_dead()
        second.ensure_dead()
        feeder.close()
