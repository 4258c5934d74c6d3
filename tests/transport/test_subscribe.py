"""Subscriptions against a real Mosquitto: waiting for the SUBACK whichever path sent it, and a
filter added while the connection comes up is still sent to the broker."""

from __future__ import annotations

import queue
import threading

import pytest

from smfel.agent.transport import MessageProperties, MqttConfig, MqttTransport, TransportError
from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.broker


class Inbox:
    def __init__(self) -> None:
        self.q: queue.Queue[bytes] = queue.Queue()

    def __call__(self, topic: str, payload: bytes, props: MessageProperties) -> None:
        self.q.put(payload)


def _config(broker: MosquittoBroker, client_id: str) -> MqttConfig:
    return MqttConfig(broker.host, broker.port, client_id, clean_start=True, session_expiry=0)


def test_a_shared_subscription_made_before_connecting_receives_once_acknowledged(
    mosquitto: MosquittoBroker,
) -> None:
    inbox = Inbox()
    shared = "$share/workers/s/updates/+"
    with MqttTransport(_config(mosquitto, "tx")) as tx:
        tx.wait_connected()
        rx = MqttTransport(_config(mosquitto, "rx")).start()
        try:
            rx.subscribe(shared, inbox)  # before the CONNACK: sent by the connect callback
            rx.wait_subscribed(shared, 10.0)
            # A shared subscription only gets what is published after its SUBACK.
            tx.publish("s/updates/n1", b"first", timeout=10.0)
            assert inbox.q.get(timeout=10.0) == b"first"
        finally:
            rx.stop()


def test_waiting_for_a_filter_never_subscribed_is_an_error(mosquitto: MosquittoBroker) -> None:
    with MqttTransport(_config(mosquitto, "rx")) as rx:
        rx.wait_connected()
        with pytest.raises(TransportError, match="not subscribed"):
            rx.wait_subscribed("never/#", 1.0)


class _SubscribeWhileConnecting(threading.Event):
    """The transport's "connected" flag: just before it is set (inside the connect callback),
    another thread subscribes a new filter, as an agent's setup does right after ``start()``."""

    def __init__(self, transport: MqttTransport, topic_filter: str, inbox: Inbox) -> None:
        super().__init__()
        self.transport, self.topic_filter, self.inbox = transport, topic_filter, inbox
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def _subscribe(self) -> None:
        try:
            self.transport.subscribe(self.topic_filter, self.inbox)
        except BaseException as err:  # reported by the test
            self.errors.append(err)

    def set(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._subscribe, name="late-subscriber")
            self.thread.start()
            # Gives the subscriber every chance to run to its end before "connected" is set.
            self.thread.join(0.5)
        super().set()


def test_a_filter_added_while_the_connection_comes_up_is_subscribed(
    mosquitto: MosquittoBroker,
) -> None:
    inbox = Inbox()
    rx = MqttTransport(_config(mosquitto, "rx"))
    hook = _SubscribeWhileConnecting(rx, "late/topic", inbox)
    rx._connected = hook
    with MqttTransport(_config(mosquitto, "tx")) as tx:
        tx.wait_connected()
        rx.start()
        try:
            rx.wait_connected()
            assert hook.thread is not None
            hook.thread.join(10.0)
            assert not hook.errors
            rx.wait_subscribed("late/topic", 10.0)
            tx.publish("late/topic", b"seen", timeout=10.0)
            assert inbox.q.get(timeout=10.0) == b"seen"
        finally:
            rx.stop()
