"""The agent's link to the broker: topics, payload encodings and verification of what arrives.

Wraps the MQTT transport (the only module that imports paho) with the agent's topics of
DESIGN.md ("Wire protocol"): retained birth/Last-Will status, telemetry, events and durable
updates out; the round announcement, global model, bundle and label feedback in. Incoming
messages are not handled on the network thread: they are handed to ``on_message(kind, bytes)``,
which queues them for the agent's worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from smfel.agent import topics
from smfel.agent.daemon.config import AgentConfig
from smfel.agent.keys import Ed25519PublicKey
from smfel.agent.protocol import (
    GlobalModel,
    Rejected,
    RoundAnnouncement,
    Update,
    parse_global,
    parse_round,
    verify_signature,
)
from smfel.agent.transport import (
    Handler,
    MessageProperties,
    MqttConfig,
    MqttTransport,
    StatusMessage,
    TlsConfig,
)

__all__ = ["Link", "open_link", "parse_global_model", "parse_round_announcement"]

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], None]


def _trusted(
    env: RoundAnnouncement | GlobalModel, keys: Mapping[str, Ed25519PublicKey]
) -> str | None:
    key = keys.get(env.key_id)
    if key is None:
        return f"unknown_key: signed by {env.key_id}, which is not a trusted aggregator key"
    try:
        verify_signature(env, key)
    except Rejected as err:
        return f"{err.reason.value}: {err.detail}"
    return None


def parse_round_announcement(
    data: bytes, keys: Mapping[str, Ed25519PublicKey]
) -> RoundAnnouncement | str:
    """The verified announcement, or the rejection reason as text."""
    try:
        ann = parse_round(data)
    except Rejected as err:
        return f"{err.reason.value}: {err.detail}"
    return _trusted(ann, keys) or ann


def parse_global_model(data: bytes, keys: Mapping[str, Ed25519PublicKey]) -> GlobalModel | str:
    """The verified global model, or the rejection reason as text."""
    try:
        gm = parse_global(data)
    except Rejected as err:
        return f"{err.reason.value}: {err.detail}"
    return _trusted(gm, keys) or gm


def _json(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


class Link:
    """Publishing and subscribing for one node over an MQTT transport."""

    def __init__(self, node_id: str, transport: MqttTransport, on_message: OnMessage) -> None:
        self.node_id = node_id
        self.transport = transport
        self.on_message = on_message

    def topic(self, what: str) -> str:
        return {
            "status": topics.status,
            "telemetry": topics.telemetry,
            "events": topics.events,
            "labels": topics.labels,
            "update": topics.update,
        }[what](self.node_id)

    def subscribe_control(self, *, bundle_topic: bool) -> None:
        subs = {topics.ROUND: "round", topics.GLOBAL: "global", self.topic("labels"): "label"}
        if bundle_topic:
            subs[topics.BUNDLE] = "bundle"
        for topic, kind in subs.items():
            self.transport.subscribe(topic, self._handler(kind))

    def _handler(self, kind: str) -> Handler:
        def handle(topic: str, payload: bytes, props: MessageProperties) -> None:
            # Handled on the agent's worker thread, never on the transport's.
            if payload:
                self.on_message(kind, bytes(payload))

        return handle

    def publish_update(self, update: Update) -> None:
        self.transport.publish(self.topic("update"), update.to_bytes(), durable=True)

    def publish_event(self, event: Mapping[str, Any]) -> None:
        self.transport.publish(self.topic("events"), _json(event), durable=True)

    def publish_telemetry(self, record: Mapping[str, Any]) -> None:
        self.transport.publish(self.topic("telemetry"), _json(record))

    def publish_raw(self, topic: str, payload: Mapping[str, Any], *, retain: bool) -> None:
        self.transport.publish(topic, _json(payload), retain=retain)

    def queue_depth(self) -> int:
        return int(self.transport.counters.get("outbox_pending", 0))

    def close(self) -> None:
        self.transport.stop()


def _transport_config(config: AgentConfig) -> MqttConfig:
    m = config.mqtt
    password = None
    if m.password_file:
        # Read at start (systemd credentials and 0600 files), never kept in the config object.
        password = Path(m.password_file).read_text().strip()
    tls = None
    if m.tls:
        tls = TlsConfig(
            ca=Path(m.ca_file) if m.ca_file else Path("/etc/ssl/certs/ca-certificates.crt"),
            cert=Path(m.cert_file) if m.cert_file else None,
            key=Path(m.key_file) if m.key_file else None,
        )
    return MqttConfig(
        host=m.host,
        port=m.port,
        client_id=f"smfel-agent-{config.node.id}",
        username=m.username or None,
        password=password,
        tls=tls,
        keepalive=m.keepalive,
    )


def open_link(
    config: AgentConfig, outbox: Path, *, birth: Mapping[str, Any], on_message: OnMessage
) -> Link:
    """Start connecting to the broker of ``config`` (returns at once; the transport reconnects
    with backoff) with a retained ``online`` birth record and an ``offline`` Last Will."""
    node = config.node.id
    will = {"state": "offline", "node": node, "board": config.board}
    transport = MqttTransport(
        _transport_config(config),
        outbox_path=outbox,
        will=StatusMessage(topics.status(node), _json(will)),
        birth=StatusMessage(topics.status(node), _json(birth)),
    )
    transport.start()
    return Link(node, transport, on_message)
