"""The agent as a service: configuration, the service loop, systemd notification, telemetry."""

from smfel.agent.daemon.alerts import Alert, AlertEngine
from smfel.agent.daemon.config import AgentConfig, ConfigError, config_from_mapping, load_config

__all__ = [
    "AgentConfig",
    "Alert",
    "AlertEngine",
    "ConfigError",
    "config_from_mapping",
    "load_config",
]
