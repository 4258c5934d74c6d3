"""A simulated device that is the real agent daemon (:class:`smfel.agent.daemon.service.Agent`).

For round ``r`` the node starts an ``Agent`` whose source replays segment ``r`` of its record
(``wfdb://DIR/REC?speed=0&start=..&end=..``, or a synthetic stream), with the agent's own
configuration, keys, bundle, outbox, MQTT transport and state directory. The agent learns every
labelled beat of the segment, answers the announced round with a signed update through its
durable outbox, adopts the verified global model, and is stopped (checkpointing its learner
and round bookkeeping) until the next segment, from which it resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from smfel.agent.bundle import ModelBundle
from smfel.agent.daemon.config import (
    AgentConfig,
    LearningConfig,
    ModelConfig,
    MqttConfig,
    NodeConfig,
    SourceConfig,
    StateConfig,
    TelemetryConfig,
)
from smfel.agent.daemon.service import Agent
from smfel.agent.errors import SmfelError
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey, key_id

__all__ = ["AgentNode"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class AgentNode:
    """Drives one real agent segment by segment; ``segments[r]`` is its source for round r+1."""

    node_id: str
    key: Ed25519PrivateKey
    segments: tuple[str, ...]
    bundle: ModelBundle
    issuer: Ed25519PublicKey
    C: float
    class_weight: tuple[float, ...]
    min_beats: int
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 1883
    failed: str = ""
    _agent: Agent | None = None

    def start(self, host: str, port: int) -> AgentNode:
        self.host, self.port = host, port
        return self

    def _config(self, index: int) -> AgentConfig:
        return AgentConfig(
            node=NodeConfig(id=self.node_id),
            source=SourceConfig(url=self.segments[index]),
            model=ModelConfig(bundle="", bundle_topic=False),
            mqtt=MqttConfig(host=self.host, port=self.port),
            learning=LearningConfig(
                C=self.C, class_weight=tuple(self.class_weight), min_beats=self.min_beats
            ),
            telemetry=TelemetryConfig(interval=3600.0),
            state=StateConfig(directory=str(self.state_dir)),
        )

    def begin_segment(self, index: int) -> None:
        """Start the agent (resuming from its checkpoint) on segment ``index``."""
        self.stop()
        agent = Agent(
            self._config(index),
            node_key=self.key,
            trusted_keys={key_id(self.issuer): self.issuer},
            bundle=self.bundle,
        )
        self._agent = agent.start()

    def finish_segment(self, timeout: float = 600.0) -> int:
        """Wait until the agent has replayed its segment; the labelled beats it learned."""
        agent = self._agent
        if agent is None:
            return 0
        if not agent.exhausted.wait(timeout):
            self.failed = f"segment not replayed within {timeout} s"
            log.error("%s: %s", self.node_id, self.failed)
            return 0
        if agent.state.source_error:
            self.failed = agent.state.source_error
        return agent.state.beats_labelled

    def beats_pending(self) -> int:
        agent = self._agent
        if agent is None or agent.federation is None:
            return 0
        return agent.federation.beats_since_last_round()

    def wait_adopted(self, round: int, timeout: float = 30.0) -> bool:
        agent = self._agent
        return agent is not None and agent.state.wait_for(
            lambda s: s.last_adopted_round >= round, timeout
        )

    def stop(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            try:
                agent.stop()
            except SmfelError as err:
                log.error("%s: stopping the agent failed: %s", self.node_id, err)
