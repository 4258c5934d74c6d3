"""The agent as a service: configuration, the service loop, systemd notification, telemetry.

Embedding (the fleet simulation runs many agents in one process)::

    agent = Agent(AgentConfig(node=NodeConfig(id="sim-101"), source=SourceConfig(url=...), ...),
                  node_key=key, trusted_keys={key_id(agg): agg_pub}, bundle=bundle,
                  on_update=lambda a, u: ..., on_exhausted=lambda a: ...)
    agent.start(); agent.state.wait_for(lambda s: s.source_exhausted, 60); agent.stop()
"""

from typing import TYPE_CHECKING, Any

from smfel.agent.daemon.alerts import Alert, AlertEngine
from smfel.agent.daemon.config import (
    AgentConfig,
    AlertsConfig,
    ConfigError,
    LearningConfig,
    ModelConfig,
    MqttConfig,
    NodeConfig,
    RuntimeConfig,
    SourceConfig,
    StateConfig,
    TelemetryConfig,
    WatchdogConfig,
    config_from_mapping,
    load_config,
)
from smfel.agent.daemon.federation import Federation, Outcome
from smfel.agent.daemon.state import AgentState

if TYPE_CHECKING:
    from smfel.agent.daemon.service import Agent

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentState",
    "Alert",
    "AlertEngine",
    "AlertsConfig",
    "ConfigError",
    "Federation",
    "LearningConfig",
    "ModelConfig",
    "MqttConfig",
    "NodeConfig",
    "Outcome",
    "RuntimeConfig",
    "SourceConfig",
    "StateConfig",
    "TelemetryConfig",
    "WatchdogConfig",
    "config_from_mapping",
    "load_config",
]


def __getattr__(name: str) -> Any:
    # The service pulls in the sensors, the runtime and the transport: import it on first use,
    # so the light commands (``--version``, ``check-config``) start fast on a small board.
    if name == "Agent":
        from smfel.agent.daemon.service import Agent

        return Agent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
