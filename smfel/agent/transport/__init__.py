"""MQTT transport: one paho adapter (MQTT 5, TLS, persistent session, Last Will, reconnect
with backoff and jitter) and the SQLite store-and-forward outbox."""

from smfel.agent.transport.client import MqttTransport
from smfel.agent.transport.config import (
    Backoff,
    MqttConfig,
    OutboxLimits,
    StatusMessage,
    TlsConfig,
)
from smfel.agent.transport.delivery import Delivery, Handler, MessageProperties, topic_matches
from smfel.agent.transport.errors import ConnectError, PublishError, TransportError
from smfel.agent.transport.outbox import Outbox, OutboxEntry

__all__ = [
    "Backoff",
    "ConnectError",
    "Delivery",
    "Handler",
    "MessageProperties",
    "MqttConfig",
    "MqttTransport",
    "Outbox",
    "OutboxEntry",
    "OutboxLimits",
    "PublishError",
    "StatusMessage",
    "TlsConfig",
    "TransportError",
    "topic_matches",
]
