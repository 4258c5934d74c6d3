"""sd_notify from the real service: READY=1, then WATCHDOG=1 while the serial ECG flows; the
pings stop when the source stalls and come back when it resumes; STOPPING=1 on SIGTERM."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from tests.agent.conftest import Issuer
from tests.agent.feeder import PtyFeeder, frames
from tests.agent.peer import AgentProcess

pytestmark = [pytest.mark.mitdb, pytest.mark.slow]


def datagrams(sock: socket.socket, seconds: float) -> list[bytes]:
    """Every datagram that arrives in the next ``seconds``."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(4096))
        except TimeoutError:
            break
    return out


def wait_datagram(sock: socket.socket, needle: bytes, timeout: float) -> list[bytes]:
    seen = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            d = sock.recv(4096)
        except TimeoutError:
            break
        seen.append(d)
        if needle in d.split(b"\n"):
            return seen
    raise AssertionError(f"no {needle!r} within {timeout} s; got {seen}")


def wait_for_log(agent: AgentProcess, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in agent.log_text():
        assert time.monotonic() < deadline, f"{text!r} not logged: {agent.log_text()[-2000:]}"
        time.sleep(0.05)


def test_ready_then_watchdog_only_while_samples_flow(
    mitdb: Path, tmp_path: Path, issuer: Issuer
) -> None:
    feeder = PtyFeeder(frames(mitdb, "101", 120.0), rate=1.0)
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""board = "x86-sim"
[node]
id = "notify-1"
[source]
url = "serial://{feeder.path}?format=frame"
[model]
bundle = "{issuer.bundle_dir}"
trusted_keys = ["{issuer.pub_file}"]
[mqtt]
enabled = false
[watchdog]
stall_seconds = 0.5
[state]
directory = "{tmp_path / "state"}"
"""
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    agent = AgentProcess(
        config,
        tmp_path / "agent.log",
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"},
    )
    try:
        agent.start()
        before = wait_datagram(sock, b"READY=1", 30)
        assert not any(b"WATCHDOG=1" in d for d in before)  # no ping before READY
        # No samples yet: no pings.
        assert not any(b"WATCHDOG=1" in d for d in datagrams(sock, 0.6))
        feeder.start()
        for _ in range(3):
            wait_datagram(sock, b"WATCHDOG=1", 5)
        feeder.pause()
        datagrams(sock, 0.8)  # the stall is noticed after stall_seconds
        stalled = datagrams(sock, 1.5)
        assert not any(b"WATCHDOG=1" in d for d in stalled), stalled
        feeder.resume()
        wait_datagram(sock, b"WATCHDOG=1", 5)
        # SIGHUP re-reads the file; a bad file is refused and the service goes on.
        config.write_text(config.read_text().replace("stall_seconds = 0.5", "stall_seconds = 0.6"))
        assert agent.proc is not None
        agent.proc.send_signal(signal.SIGHUP)
        wait_for_log(agent, "configuration reloaded")
        config.write_text(config.read_text().replace("stall_seconds = 0.6", "stall_seconds = -1"))
        agent.proc.send_signal(signal.SIGHUP)
        wait_for_log(agent, "reload refused: watchdog.stall_seconds")
        wait_datagram(sock, b"WATCHDOG=1", 5)
        assert agent.terminate() == 0
        wait_datagram(sock, b"STOPPING=1", 10)
    finally:
        agent.ensure_dead()
        feeder.close()
        sock.close()
    assert "not pinging the systemd watchdog" in agent.log_text()
