"""Typed configuration of the MQTT transport (validated on construction, no I/O)."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Backoff", "MqttConfig", "OutboxLimits", "StatusMessage", "TlsConfig"]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """``ca`` verifies the broker; ``cert`` + ``key`` present a client certificate (mutual TLS)."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("mutual TLS needs both cert and key")


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """Where and how to connect. ``clean_start=False`` with ``session_expiry`` (seconds) keeps
    the broker-side session (subscriptions, queued QoS 1 messages) across reconnects."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig | None = None
    keepalive: int = 30
    clean_start: bool = False
    session_expiry: int = 7 * 24 * 3600
    backoff_min: float = 0.5
    backoff_max: float = 60.0
    connect_timeout: float = 10.0
    #: durable messages handed to the MQTT client at once (the rest wait in the outbox).
    max_inflight: int = 20
    #: non-durable messages held in memory while disconnected before new ones are refused.
    max_queued: int = 1000
    #: seconds between outbox age checks.
    housekeeping_interval: float = 30.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("MqttConfig.host must not be empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"MqttConfig.port must be in 1..65535, got {self.port}")
        if not self.client_id or len(self.client_id.encode()) > 65535:
            raise ValueError("MqttConfig.client_id must be a non-empty string")
        if self.password is not None and self.username is None:
            raise ValueError("MqttConfig.password needs a username")
        if self.keepalive < 5 or self.session_expiry < 0:
            raise ValueError("MqttConfig.keepalive must be >= 5 s and session_expiry >= 0")
        if not 0 < self.backoff_min <= self.backoff_max:
            raise ValueError("MqttConfig needs 0 < backoff_min <= backoff_max")
        if (
            self.max_inflight < 1
            or self.max_queued < 1
            or self.connect_timeout <= 0
            or self.housekeeping_interval <= 0
        ):
            raise ValueError(
                "MqttConfig.max_inflight, max_queued, connect_timeout, housekeeping_interval must be > 0"
            )


@dataclass(frozen=True, slots=True)
class StatusMessage:
    """A retained status record: the birth message on connect, the Last Will when lost."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    """Bounds of the store-and-forward outbox; the oldest messages go first when exceeded."""

    max_messages: int = 10_000
    max_bytes: int = 256 * 1024 * 1024
    max_age: dt.timedelta = dt.timedelta(days=7)

    def __post_init__(self) -> None:
        if self.max_messages < 1 or self.max_bytes < 1 or self.max_age <= dt.timedelta(0):
            raise ValueError("OutboxLimits must be positive")


class Backoff:
    """Capped exponential backoff with "equal jitter": attempt k waits a uniform time in
    ``[c/2, c]`` with ``c = min(maximum, minimum * 2^k)``, so a fleet that lost its broker
    together does not reconnect in lock step."""

    def __init__(self, minimum: float, maximum: float, rng: random.Random | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        cap = min(self.maximum, self.minimum * 2.0 ** min(self.attempt, 60))
        self.attempt += 1
        return cap / 2 + self._rng.uniform(0.0, cap / 2)

    def reset(self) -> None:
        self.attempt = 0
