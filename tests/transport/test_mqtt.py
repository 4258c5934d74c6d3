"""The MQTT transport against a real Mosquitto: TLS, passwords, ACL, reason codes, status."""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import numpy as np
import pytest

from smfel.agent import topics
from smfel.agent.keys import Ed25519PrivateKey
from smfel.agent.protocol import Update, parse_update
from smfel.agent.transport import (
    ConnectError,
    MessageProperties,
    MqttConfig,
    MqttTransport,
    OutboxLimits,
    PublishError,
    StatusMessage,
    TlsConfig,
    TransportError,
)
from tests.support.broker import MosquittoBroker
from tests.transport.conftest import secure_config

pytestmark = pytest.mark.broker
KEY = Ed25519PrivateKey.generate()


def _update(i: int = 0) -> Update:
    return Update.create(
        KEY,
        node_id="dev-1",
        round=i,
        kind="beta",
        arrays={"beta": np.full((8, 4), float(i))},
        n_samples=60,
        local_accuracy=0.75,
        model_hash="sha256:" + "0" * 64,
    )


class Inbox:
    def __init__(self) -> None:
        self.q: queue.Queue[tuple[str, bytes, MessageProperties]] = queue.Queue()

    def __call__(self, topic: str, payload: bytes, props: MessageProperties) -> None:
        self.q.put((topic, payload, props))

    def get(self, timeout: float = 10.0) -> tuple[str, bytes, MessageProperties]:
        return self.q.get(timeout=timeout)


def test_signed_update_over_mutual_tls_with_password_and_acl(
    secure_broker: MosquittoBroker, tmp_path: Path
) -> None:
    inbox = Inbox()
    agg = MqttTransport(secure_config(secure_broker, "agg", tmp_path))
    dev = MqttTransport(secure_config(secure_broker, "dev-1", tmp_path))
    with agg, dev:
        agg.wait_connected()
        dev.wait_connected()
        agg.subscribe(topics.UPDATES_SHARED, inbox)
        u = _update(3)
        dev.publish(topics.update("dev-1"), u.to_bytes(), timeout=10)
        topic, payload, props = inbox.get()
        assert topic == topics.update("dev-1") and props.qos == 1 and not props.retain
        got = parse_update(payload, public_key=KEY.public_key())
        assert got == u
        assert dev.counters["published"] >= 1 and dev.counters["publish_failed"] == 0


def test_acl_denied_publish_is_noticed_and_reported(
    secure_broker: MosquittoBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dev = MqttTransport(
        secure_config(secure_broker, "dev-1", tmp_path), outbox_path=tmp_path / "outbox.sqlite"
    )
    with dev, caplog.at_level(logging.ERROR, logger="smfel.agent.transport"):
        dev.wait_connected()
        with pytest.raises(PublishError) as info:
            dev.publish(topics.update("dev-2"), _update().to_bytes(), timeout=10)
        assert info.value.reason_code == 0x87
        assert info.value.topic == topics.update("dev-2")
        assert "Not authorized" in info.value.reason
        # a durable message the broker refuses is reported too, and does not block the outbox
        refused = dev.publish(topics.update("dev-2"), b"x", durable=True)
        accepted = dev.publish(topics.update("dev-1"), _update(1).to_bytes(), durable=True)
        accepted.wait(10)
        with pytest.raises(PublishError):
            refused.wait(10)
        assert dev.wait_for_outbox_empty(10)
        assert dev.counters["publish_failed"] == 2
    assert sum("refused a publish" in r.getMessage() for r in caplog.records) == 2


def test_a_device_reads_only_what_its_acl_allows(
    secure_broker: MosquittoBroker, tmp_path: Path
) -> None:
    # Mosquitto grants every SUBACK and filters at delivery: the ACL still keeps other
    # nodes' updates away from a device.
    own, others = Inbox(), Inbox()
    with (
        MqttTransport(secure_config(secure_broker, "dev-1", tmp_path)) as dev,
        MqttTransport(secure_config(secure_broker, "agg", tmp_path)) as agg,
    ):
        dev.wait_connected()
        agg.wait_connected()
        dev.subscribe(topics.UPDATES_ALL, others)
        dev.subscribe(topics.ROUND, own)
        agg.publish(topics.update("dev-9"), b"not for dev-1", timeout=10)
        agg.publish(topics.ROUND, b"round", timeout=10)
        assert own.get()[1] == b"round"
        assert others.q.empty()


def test_wrong_password_is_a_connect_error(secure_broker: MosquittoBroker, tmp_path: Path) -> None:
    cfg = secure_config(secure_broker, "dev-1", tmp_path, password="guess")
    with MqttTransport(cfg) as dev, pytest.raises(ConnectError) as info:
        dev.wait_connected(10)
    assert info.value.reason_code in (0x86, 0x87)


def test_tls_without_a_client_certificate_is_refused(
    secure_broker: MosquittoBroker, tmp_path: Path
) -> None:
    files = secure_broker.tls_files
    assert files is not None
    cfg = MqttConfig(
        "localhost",
        secure_broker.tls_port,
        "no-cert",
        username="dev-1",
        password="dev-secret",
        tls=TlsConfig(files.ca),
        backoff_min=0.05,
        backoff_max=0.2,
    )
    with MqttTransport(cfg) as dev, pytest.raises(ConnectError):
        dev.wait_connected(1.5)
    assert not dev.connected


def test_birth_status_is_retained_and_a_clean_stop_publishes_offline(
    mosquitto: MosquittoBroker,
) -> None:
    status = topics.status("n1")
    cfg = MqttConfig(mosquitto.host, mosquitto.port, "n1")
    node = MqttTransport(
        cfg,
        birth=StatusMessage(status, b'{"state":"online"}'),
        will=StatusMessage(status, b'{"state":"offline"}'),
    )
    with node:
        node.wait_connected()
        late = Inbox()
        with MqttTransport(MqttConfig(mosquitto.host, mosquitto.port, "watch1")) as watch:
            watch.wait_connected()
            watch.subscribe(status, late)
            _, payload, props = late.get()
            assert payload == b'{"state":"online"}' and props.retain
    with MqttTransport(MqttConfig(mosquitto.host, mosquitto.port, "watch2")) as watch:
        watch.wait_connected()
        after = Inbox()
        watch.subscribe(status, after)
        _, payload, props = after.get()
        assert payload == b'{"state":"offline"}' and props.retain


def test_a_failing_handler_does_not_stop_delivery(mosquitto: MosquittoBroker) -> None:
    seen: list[bytes] = []
    done = threading.Event()

    def handler(topic: str, payload: bytes, props: MessageProperties) -> None:
        seen.append(payload)
        if payload == b"0":
            raise RuntimeError("bad message")
        if payload == b"2":
            done.set()

    with (
        MqttTransport(MqttConfig(mosquitto.host, mosquitto.port, "rx")) as rx,
        MqttTransport(MqttConfig(mosquitto.host, mosquitto.port, "tx")) as tx,
    ):
        rx.wait_connected()
        tx.wait_connected()
        rx.subscribe("t/#", handler)
        for i in range(3):
            tx.publish("t/x", str(i).encode(), timeout=10)
        assert done.wait(10)
        assert seen == [b"0", b"1", b"2"]
        assert rx.counters["handler_errors"] == 1


def test_publishing_before_start_or_durable_without_outbox_is_an_error(
    mosquitto: MosquittoBroker,
) -> None:
    t = MqttTransport(MqttConfig(mosquitto.host, mosquitto.port, "x"))
    with pytest.raises(TransportError, match="not started"):
        t.publish("t", b"x")
    with t, pytest.raises(TransportError, match="outbox_path"):
        t.publish("t", b"x", durable=True)


def test_a_full_outbox_drops_the_oldest_and_fails_their_deliveries(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    mosquitto.stop()  # nothing can be delivered: the outbox fills up
    cfg = MqttConfig(
        mosquitto.host,
        mosquitto.port,
        "full",
        backoff_min=0.05,
        backoff_max=0.2,
        housekeeping_interval=0.1,
    )
    agent = MqttTransport(
        cfg, outbox_path=tmp_path / "o.sqlite", outbox_limits=OutboxLimits(max_messages=3)
    )
    with agent:
        sent = [agent.publish("t/x", str(i).encode(), durable=True) for i in range(5)]
        with pytest.raises(PublishError, match="dropped"):
            sent[0].wait(5)
        with pytest.raises(PublishError, match="dropped"):
            sent[1].wait(5)
        assert agent.counters["outbox_dropped"] == 2
        assert agent.counters["outbox_pending"] == 3
        mosquitto.start()
        agent.wait_connected(10)
        for d in sent[2:]:  # the survivors go out once the broker is back
            d.wait(10)
        assert agent.wait_for_outbox_empty(10)


def test_a_restarted_process_gets_the_retained_messages_again(mosquitto: MosquittoBroker) -> None:
    cfg = MqttConfig(mosquitto.host, mosquitto.port, "device-9")
    with MqttTransport(MqttConfig(mosquitto.host, mosquitto.port, "aggregator")) as agg:
        agg.wait_connected()
        agg.publish(topics.ROUND, b"round 1", retain=True, timeout=10)
    for _ in range(2):  # the second run finds its session (and subscription) on the broker
        inbox = Inbox()
        with MqttTransport(cfg) as dev:
            dev.wait_connected()
            dev.subscribe(topics.ROUND, inbox)
            _, payload, props = inbox.get()
            assert payload == b"round 1" and props.retain
    with MqttTransport(cfg) as dev:  # subscribed before connecting: sent on connect
        inbox = Inbox()
        dev.subscribe(topics.ROUND, inbox)
        dev.wait_connected()
        assert inbox.get()[1] == b"round 1"
