"""The MQTT transport: the one module of smfel that imports paho-mqtt (2.x, VERSION2 callbacks).

MQTT 5 (OASIS, 2019) over TCP or TLS, QoS 1, a persistent session (``clean_start = false`` with a
session expiry interval), a retained birth status on every connect and a retained Last Will,
reconnects with capped exponential backoff and jitter, and the SQLite store-and-forward outbox
for durable messages (:mod:`smfel.agent.transport.outbox`).

Threads: one network thread (``smfel-mqtt-net``) runs paho's ``loop()`` and reconnects; one
dispatcher thread (``smfel-mqtt-dispatch``) runs subscription handlers, so a slow handler never
stalls keepalives and a handler may itself publish and wait. Received QoS 1 messages are
acknowledged after their handlers ran (paho ``manual_ack``), so a crash inside a handler means
redelivery, not loss. Publishing is allowed from any thread.

PUBACK reason codes >= 0x80 (MQTT 5, e.g. 0x87 Not authorized when the broker's ACL denies the
topic) are counted, logged and reported: :meth:`Delivery.wait` raises :class:`PublishError`.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from smfel.agent.transport.config import Backoff, MqttConfig, OutboxLimits, StatusMessage
from smfel.agent.transport.delivery import Delivery, Handler, MessageProperties, topic_matches
from smfel.agent.transport.errors import ConnectError, TransportError
from smfel.agent.transport.outbox import Outbox

__all__ = ["MqttTransport"]

log = logging.getLogger(__name__)


_COUNTERS = (
    "connects",
    "connect_failures",
    "disconnects",
    "published",
    "publish_failed",
    "publish_refused_locally",
    "outbox_replayed",
    "received",
    "handler_errors",
)


class MqttTransport:
    """A connection to the broker; a context manager (``start`` on enter, ``stop`` on exit).

    ``outbox_path``: SQLite file of the store-and-forward outbox (needed for ``durable=True``).
    ``will``: the Last Will (retained ``offline`` status), also published on a clean stop.
    ``birth``: the retained status published on every successful connect.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        outbox_path: str | Path | None = None,
        outbox_limits: OutboxLimits | None = None,
        will: StatusMessage | None = None,
        birth: StatusMessage | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.will = will
        self.birth = birth
        self._outbox = Outbox(outbox_path, outbox_limits) if outbox_path is not None else None
        self._backoff = backoff or Backoff(config.backoff_min, config.backoff_max)
        self._client: mqtt.Client | None = None
        self._net: threading.Thread | None = None
        self._dispatch: threading.Thread | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._counter_lock = threading.Lock()
        self._last_refusal: tuple[float, str, int] | None = None
        self._last_error = "not connected yet"
        # Publishing and PUBACK bookkeeping (lock order: _pump_lock, then paho's own locks).
        self._pump_lock = threading.Lock()
        self._acks: deque[tuple[int, int, str]] = deque()
        self._deliveries: dict[int, Delivery] = {}
        self._durable_inflight: dict[int, int] = {}  # mid -> outbox row id
        self._durable_deliveries: dict[int, Delivery] = {}  # outbox row id -> delivery
        self._last_handed = 0
        self._subs: dict[str, tuple[Handler, int]] = {}
        self._sub_lock = threading.Lock()
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._suback_cond = threading.Condition()
        self._acked_filters: set[str] = set()  # acknowledged in this process's lifetime
        self._refused_filters: dict[str, str] = {}  # filter -> SUBACK reason, sent on connect
        self._resubscribing: dict[int, str] = {}  # mid -> filter, SUBSCRIBEs sent on connect
        self._inbox: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()

    # -- lifecycle -----------------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._counter_lock:
            self._counters[name] += n

    @property
    def counters(self) -> dict[str, int]:
        """A snapshot of the counters, with the outbox's size and its dropped total."""
        with self._counter_lock:
            out = dict(self._counters)
        if self._outbox is not None and self._outbox.is_open:
            out["outbox_pending"] = len(self._outbox)
            out["outbox_dropped"] = self._outbox.dropped
        return out

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _make_client(self) -> mqtt.Client:
        c = self.config
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=c.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if c.tls is not None:
            client.tls_set(
                ca_certs=str(c.tls.ca),
                certfile=str(c.tls.cert) if c.tls.cert else None,
                keyfile=str(c.tls.key) if c.tls.key else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        if self.will is not None:
            client.will_set(
                self.will.topic, self.will.payload, qos=self.will.qos, retain=self.will.retain
            )
        client.max_queued_messages_set(c.max_queued + c.max_inflight)
        client.max_inflight_messages_set(c.max_inflight)
        client.reconnect_delay_set(1, 1)  # unused: this module reconnects itself
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        # Writes happen only on the network thread: publish() from other threads queues the
        # packet and wakes the loop instead of writing to the socket itself.
        client.on_socket_register_write = lambda _c, _u, _s: None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = c.session_expiry
        client.connect_async(
            c.host, c.port, keepalive=c.keepalive, clean_start=c.clean_start, properties=props
        )
        return client

    def start(self) -> MqttTransport:
        """Open the outbox and start connecting in the background (see :meth:`wait_connected`)."""
        if self._net is not None:
            return self
        if self._outbox is not None:
            self._outbox.open()
            self._outbox.expire()
            self._count("outbox_replayed", len(self._outbox))
        with self._pump_lock:  # nothing of a previous run's client carries over
            self._durable_inflight.clear()
            self._deliveries.clear()
            self._last_handed = 0
        with self._suback_cond:
            self._acked_filters.clear()
            self._refused_filters.clear()
            self._resubscribing.clear()
        self._client = self._make_client()
        self._stop.clear()
        self._dispatch = threading.Thread(
            target=self._dispatch_loop, name="smfel-mqtt-dispatch", daemon=True
        )
        self._net = threading.Thread(target=self._net_loop, name="smfel-mqtt-net", daemon=True)
        self._dispatch.start()
        self._net.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Publish the ``offline`` status, disconnect cleanly, stop the threads, close."""
        if self._net is None:
            return
        if self.will is not None and self.connected:
            try:
                self.publish(
                    self.will.topic,
                    self.will.payload,
                    qos=self.will.qos,
                    retain=self.will.retain,
                    timeout=min(timeout, 2.0),
                )
            except TransportError as err:
                log.warning("could not publish the offline status: %s", err)
        self._stop.set()
        self._net.join(timeout)
        self._inbox.put(None)
        if self._dispatch is not None:
            self._dispatch.join(timeout)
        self._net = self._dispatch = None
        self._client = None
        if self._outbox is not None:
            self._outbox.close()
        self._connected.clear()

    def __enter__(self) -> MqttTransport:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until connected; :class:`ConnectError` when the broker refuses (CONNACK
        reason >= 0x80, e.g. bad credentials) or ``timeout`` passes."""
        t = self.config.connect_timeout if timeout is None else timeout
        started, deadline = time.monotonic(), time.monotonic() + t
        c = self.config
        while not self._connected.wait(0.05):
            refusal = self._last_refusal
            if refusal is not None and refusal[0] >= started:
                raise ConnectError(c.host, c.port, refusal[1], refusal[2])
            if time.monotonic() > deadline:
                if refusal is not None:
                    raise ConnectError(c.host, c.port, refusal[1], refusal[2])
                raise ConnectError(c.host, c.port, self._last_error)

    # -- network thread ------------------------------------------------------------------------

    def _net_loop(self) -> None:
        client = self._client
        assert client is not None
        sock_open = False
        next_housekeeping = time.monotonic() + self.config.housekeeping_interval
        while not self._stop.is_set():
            if time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + self.config.housekeeping_interval
                self._housekeeping()
            if not sock_open:
                try:
                    client.reconnect()
                    sock_open = True
                except (OSError, ssl.SSLError, ValueError) as err:
                    self._last_error = f"{type(err).__name__}: {err}"
                    self._count("connect_failures")
                    delay = self._backoff.next()
                    log.debug("connect failed (%s); retrying in %.2f s", err, delay)
                    self._stop.wait(delay)
                    continue
            rc = client.loop(timeout=0.2)
            self._process_acks()
            self._pump()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not self._stop.is_set():
                sock_open = False
                self._connected.clear()
                delay = self._backoff.next()
                log.debug("connection lost (%s); reconnecting in %.2f s", rc, delay)
                self._stop.wait(delay)
        if sock_open:
            client.disconnect()
            deadline = time.monotonic() + 2.0
            while client.want_write() and time.monotonic() < deadline:
                if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break
        self._process_acks()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._last_refusal = (time.monotonic(), str(reason_code), int(reason_code.value))
            self._last_error = f"refused: {reason_code}"
            self._count("connect_failures")
            log.error("broker refused the connection: %s", reason_code)
            return
        self._backoff.reset()
        self._count("connects")
        log.info(
            "connected to %s:%d (session present: %s)",
            self.config.host,
            self.config.port,
            flags.session_present,
        )
        # The subscription lock is held until the connection counts as up: subscribe() decides
        # under the same lock whether to send a filter itself or leave it to this snapshot, so
        # a filter added while this callback runs is never left to neither.
        with self._sub_lock:
            subs = list(self._subs.items())
            with self._suback_cond:
                if not flags.session_present:
                    self._acked_filters.clear()
                for topic_filter, (_handler, qos) in subs:
                    # A filter this process already had acknowledged lives on in the broker's
                    # session; any other is (re)subscribed, which also delivers the retained
                    # messages (round, global model) a freshly started process needs.
                    if topic_filter in self._acked_filters:
                        continue
                    rc, mid = client.subscribe(topic_filter, options=SubscribeOptions(qos=qos))
                    if rc == MQTTErrorCode.MQTT_ERR_SUCCESS and mid is not None:
                        self._resubscribing[mid] = topic_filter
            if self.birth is not None:
                client.publish(
                    self.birth.topic,
                    self.birth.payload,
                    qos=self.birth.qos,
                    retain=self.birth.retain,
                )
            self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            self._count("disconnects")
            if not self._stop.is_set():
                log.warning("disconnected from the broker: %s", reason_code)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # Called with paho's locks held: only record; _process_acks does the work.
        self._acks.append((mid, int(reason_code.value), str(reason_code)))

    def _process_acks(self) -> None:
        while self._acks:
            with self._pump_lock:
                try:
                    mid, code, reason = self._acks.popleft()
                except IndexError:
                    return
                delivery = self._deliveries.pop(mid, None)
                row = self._durable_inflight.pop(mid, None)
                if row is not None and self._outbox is not None:
                    self._outbox.ack(row)  # refused messages are not retried: they never pass
                    delivery = self._durable_deliveries.pop(row, None)
            if code >= 0x80:
                self._count("publish_failed")
                topic = delivery.topic if delivery is not None else "?"
                log.error("broker refused a publish to %r: %s (0x%02x)", topic, reason, code)
            else:
                self._count("published")
            if delivery is not None:
                delivery._resolve(code, reason)

    def _housekeeping(self) -> None:
        """Drop outbox rows past their age; fail the deliveries of rows the bounds dropped."""
        if self._outbox is None:
            return
        self._outbox.expire()
        with self._pump_lock:
            pending = self._outbox.pending(limit=1)
            oldest = pending[0].id if pending else self._last_handed + 1
            inflight = set(self._durable_inflight.values())
            gone = [r for r in self._durable_deliveries if r < oldest and r not in inflight]
            for r in gone:
                self._durable_deliveries.pop(r)._resolve(0x97, "dropped from the full outbox")

    def _pump(self) -> None:
        """Hand the next outbox rows to paho, at most ``max_inflight`` at a time, in order."""
        client = self._client
        if self._outbox is None or client is None or not self._connected.is_set():
            return
        with self._pump_lock:
            room = self.config.max_inflight - len(self._durable_inflight)
            if room <= 0:
                return
            for row in self._outbox.pending(after=self._last_handed, limit=room):
                info = client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    break
                self._durable_inflight[info.mid] = row.id
                self._last_handed = row.id

    # -- publishing ----------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        durable: bool = False,
        timeout: float | None = None,
    ) -> Delivery:
        """Publish; with ``durable`` through the outbox (stored first, kept until PUBACK).

        With ``timeout`` the call waits for the acknowledgement and raises
        :class:`PublishError` on a refusal (e.g. ACL denied) or when none came in time.
        """
        client = self._client
        if client is None:
            raise TransportError("the transport is not started")
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        delivery = Delivery(topic)
        if durable:
            if self._outbox is None:
                raise TransportError("durable publishing needs an outbox_path")
            # Stored and registered under the pump lock: the network thread must not hand the
            # row to paho (and process its PUBACK) before the delivery is known.
            with self._pump_lock:
                row = self._outbox.put(topic, bytes(payload), qos=qos, retain=retain)
                self._durable_deliveries[row] = delivery
            self._pump()
        else:
            with self._pump_lock:
                info = client.publish(topic, payload, qos=qos, retain=retain)
                if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                    self._count("publish_refused_locally")
                    delivery._resolve(0x97, "not connected and the in-memory queue is full")
                elif info.rc not in (
                    MQTTErrorCode.MQTT_ERR_SUCCESS,
                    MQTTErrorCode.MQTT_ERR_NO_CONN,
                ):
                    self._count("publish_refused_locally")
                    delivery._resolve(0x80, mqtt.error_string(info.rc))
                else:
                    self._deliveries[info.mid] = delivery
        if timeout is not None:
            delivery.wait(timeout)
        return delivery

    def wait_for_outbox_empty(self, timeout: float) -> bool:
        """True once every durable message was acknowledged; False after ``timeout``."""
        if self._outbox is None:
            return True
        deadline = time.monotonic() + timeout
        while len(self._outbox):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # -- subscribing ---------------------------------------------------------------------------

    def subscribe(
        self, topic_filter: str, handler: Handler, *, qos: int = 1, timeout: float = 10.0
    ) -> None:
        """Call ``handler(topic, payload, properties)`` for every matching message. Kept across
        reconnects. When connected, waits for the SUBACK and raises :class:`TransportError` if
        the broker refuses the filter."""
        client = self._client
        if client is None:
            raise TransportError("the transport is not started")
        with self._sub_lock:
            self._subs[topic_filter] = (handler, qos)
            with self._suback_cond:
                self._refused_filters.pop(topic_filter, None)
            if not self.connected:
                return  # sent on connect (see _on_connect); wait_subscribed() waits for it
        rc, mid = client.subscribe(topic_filter, options=SubscribeOptions(qos=qos))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return  # the connection dropped; the subscription is sent on reconnect
        deadline = time.monotonic() + timeout
        with self._suback_cond:
            while mid not in self._subacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(f"no SUBACK for {topic_filter!r} within {timeout} s")
                self._suback_cond.wait(left)
            codes = self._subacks.pop(mid)
        refused = [c for c in codes if c.is_failure]
        if not refused:
            with self._suback_cond:
                self._acked_filters.add(topic_filter)
                self._suback_cond.notify_all()
        else:
            with self._sub_lock:
                self._subs.pop(topic_filter, None)
            raise TransportError(
                f"the broker refused the subscription {topic_filter!r}: {refused[0]}"
            )

    def wait_subscribed(self, topic_filter: str, timeout: float) -> None:
        """Block until the broker acknowledged (SUBACK) ``topic_filter`` on the current
        connection, whichever path sent it (:meth:`subscribe` or the subscriptions sent on
        connect). A shared subscription receives only what is published after its SUBACK, so
        a service waits here before it asks for messages. :class:`TransportError` when the
        broker refused the filter, it was never subscribed, or ``timeout`` passed."""
        with self._sub_lock:
            if topic_filter not in self._subs:
                raise TransportError(f"{topic_filter!r} is not subscribed")
        deadline = time.monotonic() + timeout
        with self._suback_cond:
            while topic_filter not in self._acked_filters or not self.connected:
                reason = self._refused_filters.get(topic_filter)
                if reason is not None:
                    raise TransportError(
                        f"the broker refused the subscription {topic_filter!r}: {reason}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransportError(f"no SUBACK for {topic_filter!r} within {timeout} s")
                # Woken by every SUBACK; the short cap also notices a (re)connection.
                self._suback_cond.wait(min(left, 0.05))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        with self._suback_cond:
            topic_filter = self._resubscribing.pop(mid, None)
            if topic_filter is not None:
                refused = [c for c in reason_codes if c.is_failure]
                if refused:
                    log.error(
                        "the broker refused the subscription %r: %s", topic_filter, refused[0]
                    )
                    self._refused_filters[topic_filter] = str(refused[0])
                else:
                    self._acked_filters.add(topic_filter)
                self._suback_cond.notify_all()
                return
            self._subacks[mid] = list(reason_codes)
            if len(self._subacks) > 1000:  # SUBACKs of resubscriptions nobody waits for
                self._subacks.pop(next(iter(self._subacks)))
            self._suback_cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(message)

    def _dispatch_loop(self) -> None:
        while True:
            message = self._inbox.get()
            if message is None:
                return
            self._count("received")
            props = message.properties
            info = MessageProperties(
                retain=bool(message.retain),
                qos=int(message.qos),
                duplicate=bool(message.dup),
                content_type=getattr(props, "ContentType", None),
                user_properties=tuple(getattr(props, "UserProperty", ()) or ()),
            )
            with self._sub_lock:
                handlers = [
                    h for f, (h, _q) in self._subs.items() if topic_matches(f, message.topic)
                ]
            payload = bytes(message.payload)
            for handler in handlers:
                try:
                    handler(message.topic, payload, info)
                except Exception:
                    self._count("handler_errors")
                    log.exception("handler for %r failed", message.topic)
            client = self._client
            if message.qos > 0 and client is not None:
                client.ack(message.mid, message.qos)
