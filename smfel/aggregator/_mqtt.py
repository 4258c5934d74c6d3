"""A small MQTT 5 client for the aggregation service (paho-mqtt 2.x, VERSION2 callbacks).

Publishes at QoS 1 and waits for the acknowledgement; subscribes with a callback per filter
(shared subscriptions ``$share/GROUP/FILTER`` included, so several aggregator workers split the
updates between them). Kept private and small; the agent's transport adapter is the general one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from smfel.aggregator.errors import AggregatorError

__all__ = ["MqttClient", "MqttError"]

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]


class MqttError(AggregatorError):
    """The broker could not be reached or refused an operation; ``reason`` says why."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class MqttClient:
    """Connect on :meth:`start`; resubscribe on every reconnect (clean start each time)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "",
        username: str = "",
        password: str = "",
        tls_ca: str = "",
        tls_cert: str = "",
        tls_key: str = "",
        keepalive: int = 30,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.username, self.password = username, password
        self.tls = (tls_ca, tls_cert, tls_key)
        self.keepalive = keepalive
        self._subs: dict[str, Handler] = {}
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._loop_thread: int | None = None

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler(topic, payload)`` for every message on ``topic_filter`` (QoS 1)."""
        self._subs[topic_filter] = handler
        if self._client is not None and self._connected.is_set():
            self._client.subscribe(topic_filter, qos=1)

    def start(self, timeout: float = 10.0) -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        if self.username:
            c.username_pw_set(self.username, self.password or None)
        ca, cert, key = self.tls
        if ca or cert:
            c.tls_set(ca_certs=ca or None, certfile=cert or None, keyfile=key or None)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.max_inflight_messages_set(100)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._client = c
        try:
            c.connect(self.host, self.port, keepalive=self.keepalive)
        except OSError as err:
            raise MqttError(f"cannot reach the broker at {self.host}:{self.port}: {err}") from err
        c.loop_start()
        if not self._connected.wait(timeout):
            self.stop()
            raise MqttError(f"no CONNACK from {self.host}:{self.port} within {timeout} s")

    def stop(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            c.disconnect()
            c.loop_stop()
        self._connected.clear()

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10.0
    ) -> None:
        """Publish at QoS 1 and wait for PUBACK; :class:`MqttError` when it is refused.

        Called from a message handler (paho's network thread, which is the one that would
        receive the PUBACK) it queues the message and returns without waiting."""
        c = self._client
        if c is None:
            raise MqttError("not started")
        info = c.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed", mqtt.error_string(info.rc))
        if threading.get_ident() == self._loop_thread:
            return
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise MqttError(f"no PUBACK for {topic} within {timeout} s")

    # -- callbacks (paho's network thread) ----------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self._loop_thread = threading.get_ident()
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        for f in self._subs:
            client.subscribe(f, qos=1)
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self._connected.clear()
        if reason.is_failure:
            log.warning("disconnected from the broker: %s (reconnecting)", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        for f, handler in list(self._subs.items()):
            plain = f.split("/", 2)[2] if f.startswith("$share/") else f
            if mqtt.topic_matches_sub(plain, msg.topic):
                try:
                    handler(msg.topic, bytes(msg.payload))
                except Exception:
                    # A handler bug must not kill paho's network thread.
                    log.exception("handler for %s failed", msg.topic)
