"""sd_notify over a real AF_UNIX datagram socket, and the watchdog that pings only while alive."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smfel.agent.daemon.sdnotify import Notifier, Watchdog, watchdog_interval

pytestmark = pytest.mark.device


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_notifier_sends_newline_separated_fields(notify_socket: socket.socket) -> None:
    n = Notifier(notify_socket.getsockname())
    assert n.ready("running on x")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=running on x"
    assert n.watchdog()
    assert notify_socket.recv(4096) == b"WATCHDOG=1"
    assert n.stopping()
    assert notify_socket.recv(4096) == b"STOPPING=1\nSTATUS=stopping"
    n.close()


def test_abstract_socket_address() -> None:
    name = f"smfel-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier("@" + name).status("hello\nworld")
        assert sock.recv(4096) == b"STATUS=hello world"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    assert not n.ready()


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "gone.sock")).watchdog()


def test_watchdog_interval_from_environment() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


def test_watchdog_pings_only_while_alive(notify_socket: socket.socket) -> None:
    alive = threading.Event()
    alive.set()
    dog = Watchdog(Notifier(notify_socket.getsockname()), 0.02, alive.is_set)
    dog.start()
    try:
        assert notify_socket.recv(64) == b"WATCHDOG=1"
        assert notify_socket.recv(64) == b"WATCHDOG=1"
        alive.clear()
        time.sleep(0.1)  # let a ping already on its way land before draining
        notify_socket.setblocking(False)
        while True:
            try:
                notify_socket.recv(64)
            except BlockingIOError:
                break
        notify_socket.settimeout(0.3)
        with pytest.raises(TimeoutError):
            notify_socket.recv(64)
        assert dog.missed > 0
        alive.set()
        notify_socket.settimeout(5)
        assert notify_socket.recv(64) == b"WATCHDOG=1"
    finally:
        dog.stop()
    assert [t for t in threading.enumerate() if t.name == "smfel-watchdog"] == []
