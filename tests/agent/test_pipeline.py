"""The service loop offline on a real MIT-BIH replay: classify, alert, learn, checkpoint, resume."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from smfel.agent.daemon.checkpoint import read_checkpoint
from smfel.agent.daemon.config import (
    AgentConfig,
    ModelConfig,
    MqttConfig,
    NodeConfig,
    SourceConfig,
    StateConfig,
    TelemetryConfig,
)
from smfel.agent.daemon.keyfiles import KeyFileError
from smfel.agent.daemon.service import Agent
from tests.agent.conftest import Issuer

pytestmark = pytest.mark.mitdb


def offline_config(
    mitdb: Path, state: Path, start: float, end: float, record: str = "119"
) -> AgentConfig:
    return AgentConfig(
        node=NodeConfig(id="bed-119"),
        source=SourceConfig(url=f"wfdb://{mitdb}/{record}?speed=0&start={start}&end={end}"),
        mqtt=MqttConfig(enabled=False),
        state=StateConfig(directory=str(state)),
        telemetry=TelemetryConfig(interval=0.05),
    )


def run_to_end(agent: Agent) -> None:
    done = threading.Event()
    agent._on_exhausted = lambda _a: done.set()
    agent.start()
    try:
        assert done.wait(120), "the replay did not end"
    finally:
        agent.stop()


def test_replay_is_classified_learned_checkpointed_and_resumed(
    mitdb: Path, tmp_path: Path, issuer: Issuer
) -> None:
    state = tmp_path / "state"
    first = Agent(
        offline_config(mitdb, state, 0, 300),
        bundle=issuer.bundle,
        trusted_keys=issuer.trusted,  # type: ignore[arg-type]
    )
    run_to_end(first)
    st = first.state
    assert st.phase == "stopped" and st.source_exhausted
    assert 300 < st.beats < 500  # about 5 minutes of a ~70 bpm record
    assert st.beats_learned == st.beats_labelled > 0.9 * st.beats
    assert st.bad_inputs == 0
    # Record 119 has ventricular bigeminy: the learned model flags V beats per minute.
    assert st.alerts > 0
    assert first.telemetry.totals["V"] > 20
    ckpt = read_checkpoint(state / "agent.ckpt")
    assert ckpt.learner.n_seen_ == st.beats_learned
    assert ckpt.meta["model_hash"] == issuer.bundle.model_hash
    status = json.loads((state / "status.json").read_text())
    assert status["beats_learned"] == st.beats_learned
    assert status["phase"] == "stopped"
    assert (state / "node.key").stat().st_mode & 0o777 == 0o600

    # A second run (the device restarted, the next five minutes of ECG: a stream that does not
    # start at sample 0) resumes from the checkpoint.
    second = Agent(
        offline_config(mitdb, state, 300, 600),
        bundle=issuer.bundle,
        trusted_keys=issuer.trusted,  # type: ignore[arg-type]
    )
    run_to_end(second)
    assert second.state.beats_learned > st.beats_learned + 300
    assert read_checkpoint(state / "agent.ckpt").learner.n_seen_ == second.state.beats_learned


def test_without_a_bundle_the_agent_waits_and_counts_beats(mitdb: Path, tmp_path: Path) -> None:
    agent = Agent(offline_config(mitdb, tmp_path / "s", 0, 60), trusted_keys={})
    run_to_end(agent)
    assert agent.state.beats > 50
    assert agent.state.beats_learned == 0
    assert agent.learner is None


def test_a_failing_start_is_reported_in_the_state(tmp_path: Path) -> None:
    config = dataclasses.replace(
        AgentConfig(node=NodeConfig(id="n"), mqtt=MqttConfig(enabled=False)),
        state=StateConfig(directory=str(tmp_path / "s")),
        model=ModelConfig(trusted_keys=(str(tmp_path / "missing.pub"),)),
    )
    agent = Agent(config)
    with pytest.raises(KeyFileError):
        agent.run(threading.Event())
    assert agent.state.phase == "stopped"
    assert "missing.pub" in agent.state.error
    assert json.loads((tmp_path / "s" / "status.json").read_text())["error"] == agent.state.error
