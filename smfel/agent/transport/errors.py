"""Exceptions of the MQTT transport; each carries its context as attributes."""

from __future__ import annotations

from smfel.agent.errors import SmfelError

__all__ = ["ConnectError", "PublishError", "TransportError"]


class TransportError(SmfelError):
    """Base class of transport errors."""


class ConnectError(TransportError):
    """No connection to the broker: ``reason`` (the CONNACK reason or the socket error) says
    why; ``reason_code`` is the MQTT 5 CONNACK reason code when the broker refused."""

    def __init__(self, host: str, port: int, reason: str, reason_code: int | None = None) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason
        self.reason_code = reason_code


class PublishError(TransportError):
    """The broker refused a publish (MQTT 5 PUBACK reason code >= 0x80, e.g. 0x87 Not
    authorized for an ACL-denied topic), or it was not acknowledged in time
    (``reason_code`` is ``None``)."""

    def __init__(self, topic: str, reason: str, reason_code: int | None = None) -> None:
        code = f" (0x{reason_code:02x})" if reason_code is not None else ""
        super().__init__(f"publish to {topic!r} failed: {reason}{code}")
        self.topic = topic
        self.reason = reason
        self.reason_code = reason_code
