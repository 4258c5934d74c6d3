"""A private Mosquitto for a simulation run: free port, temporary directory, stopped on exit.

The fleet simulation talks to the same broker the devices use in the field (Debian
``mosquitto`` 2.x), started as a plain process on 127.0.0.1 with anonymous clients and no
persistence. ``user root`` keeps a broker started as root from dropping to a user that cannot
read the temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from smfel.agent.errors import SmfelError

__all__ = ["Broker", "BrokerError"]

_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


class BrokerError(SmfelError):
    """Mosquitto is missing or did not start; the message carries the tail of its log."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


class Broker:
    """``with Broker() as b: ... b.host, b.port``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Broker:
        binary = shutil.which("mosquitto", path=_PATH)
        if binary is None:
            raise BrokerError(
                "the simulation needs the Mosquitto broker: apt-get install mosquitto"
            )
        self._dir = tempfile.TemporaryDirectory(prefix="smfel-broker-")
        d = Path(self._dir.name)
        self.port = _free_port(self.host)
        conf = d / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    "allow_anonymous true",
                    "persistence false",
                    "max_queued_messages 100000",
                    "message_size_limit 0",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "user root",
                    f"listener {self.port} {self.host}",
                    "protocol mqtt",
                    "",
                ]
            )
        )
        log = (d / "mosquitto.log").open("ab")
        try:
            self._proc = subprocess.Popen(
                [binary, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not _accepts(self.host, self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = (d / "mosquitto.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise BrokerError(f"mosquitto did not start on port {self.port}:\n{tail}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
