"""The test broker itself: it starts, authenticates, enforces its ACL and survives restarts."""

from __future__ import annotations

import queue
import ssl
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.broker import MosquittoBroker

pytestmark = pytest.mark.broker


def _client(name: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)


def _connect(client: mqtt.Client, host: str, port: int) -> ReasonCode:
    got: queue.Queue[ReasonCode] = queue.Queue()

    def on_connect(
        c: mqtt.Client, u: Any, f: mqtt.ConnectFlags, rc: ReasonCode, p: Properties | None
    ) -> None:
        got.put(rc)

    client.on_connect = on_connect
    client.connect(host, port)
    client.loop_start()
    return got.get(timeout=10)


def test_plain_fixture_delivers_and_keeps_retained_across_restart(
    mosquitto: MosquittoBroker,
) -> None:
    topic = f"test/{uuid.uuid4().hex}"
    pub = _client("pub")
    assert not _connect(pub, mosquitto.host, mosquitto.port).is_failure
    pub.publish(topic, b"kept", qos=1, retain=True).wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()
    port = mosquitto.port
    mosquitto.restart()
    assert mosquitto.port == port

    got: queue.Queue[bytes] = queue.Queue()
    sub = _client("sub")
    sub.on_message = lambda c, u, m: got.put(bytes(m.payload))
    assert not _connect(sub, mosquitto.host, mosquitto.port).is_failure
    sub.subscribe(topic, qos=1)
    assert got.get(timeout=10) == b"kept"
    sub.disconnect()
    sub.loop_stop()


def test_tls_password_and_acl(tmp_path: Path) -> None:
    acl = "user dev\ntopic write allowed/#\ntopic read allowed/#\n"
    with MosquittoBroker(tmp_path, users={"dev": "pw"}, acl=acl, tls=True, plain=False) as b:
        assert b.tls_files is not None
        bad = _client("bad")
        bad.tls_set(ca_certs=str(b.tls_files.ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        bad.username_pw_set("dev", "wrong")
        assert _connect(bad, "localhost", b.tls_port).is_failure
        bad.loop_stop()

        acks: queue.Queue[ReasonCode] = queue.Queue()
        c = _client("dev")
        c.tls_set(ca_certs=str(b.tls_files.ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.username_pw_set("dev", "pw")
        c.on_publish = lambda cl, u, mid, rc, p: acks.put(rc)
        assert not _connect(c, "localhost", b.tls_port).is_failure
        c.publish("allowed/x", b"1", qos=1)
        assert not acks.get(timeout=10).is_failure
        c.publish("denied/x", b"1", qos=1)
        rc = acks.get(timeout=10)
        assert rc.is_failure
        assert rc.value == 0x87  # Not authorized
        c.disconnect()
        c.loop_stop()
