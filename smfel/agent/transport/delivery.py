"""What a publish and a subscription hand back: deliveries, message properties, handlers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from smfel.agent.transport.errors import PublishError

__all__ = ["Delivery", "Handler", "MessageProperties", "topic_matches"]


@dataclass(frozen=True, slots=True)
class MessageProperties:
    """What a handler learns about a received message besides topic and payload."""

    retain: bool
    qos: int
    duplicate: bool
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()


Handler = Callable[[str, bytes, MessageProperties], None]


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches the MQTT ``topic_filter`` (MQTT 5, section 4.7); a shared
    subscription's ``$share/<group>/`` prefix is ignored."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        topic_filter = parts[2] if len(parts) == 3 else ""
    f, t = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and f[0] in ("+", "#"):
        return False  # wildcards at the first level never match $-topics (4.7.2)
    for i, part in enumerate(f):
        if part == "#":
            return True  # also matches the parent level: "a/#" matches "a"
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(f) == len(t)


class Delivery:
    """The outcome of one publish: resolved by the broker's PUBACK (QoS 1) or the write (QoS 0)."""

    __slots__ = ("_event", "reason", "reason_code", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.reason_code: int | None = None
        self.reason = ""
        self._event = threading.Event()

    def _resolve(self, code: int, reason: str) -> None:
        self.reason_code, self.reason = code, reason
        self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    @property
    def ok(self) -> bool:
        return self.done() and (self.reason_code or 0) < 0x80

    def wait(self, timeout: float | None = None) -> None:
        """Block until acknowledged; :class:`PublishError` on a refusal or a timeout."""
        if not self._event.wait(timeout):
            raise PublishError(self.topic, f"no acknowledgement within {timeout} s")
        if (self.reason_code or 0) >= 0x80:
            raise PublishError(self.topic, self.reason, self.reason_code)
