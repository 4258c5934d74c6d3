"""systemd's notification protocol (sd_notify(3)) with the standard library, and the watchdog.

A message is one datagram of newline-separated ``KEY=VALUE`` lines (``READY=1``, ``STATUS=...``,
``WATCHDOG=1``, ``STOPPING=1``) sent over an ``AF_UNIX``/``SOCK_DGRAM`` socket to the address in
``$NOTIFY_SOCKET``; an address starting with ``@`` is in the abstract namespace. Without the
variable the process is not supervised and every call does nothing.

The watchdog thread pings every ``WATCHDOG_USEC / 2`` only while the liveness predicate holds
(the agent passes "a sample arrived in the last few seconds"), so a stalled sensor or a wedged
pipeline stops the pings and systemd restarts the service (``WatchdogSec=``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

__all__ = ["Notifier", "Watchdog", "watchdog_interval"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; a no-op when ``NOTIFY_SOCKET`` is not set."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def _target(self) -> str | bytes:
        if self.address.startswith("@"):
            return b"\0" + self.address[1:].encode()
        return self.address

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (``notify(READY=1, STATUS="running")``); True if sent."""
        if not self.enabled:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value).replace("\n", " ")
            lines.append(f"{key}={text}")
        data = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                self._sock.sendto(data, self._target())
            except OSError as err:
                # systemd going away must not stop the agent; say so once.
                if not self._warned:
                    log.warning("sd_notify to %s failed: %s", self.address, err)
                    self._warned = True
                return False
        return True

    def ready(self, status: str = "running") -> bool:
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None when no watchdog is asked for.

    ``WATCHDOG_PID``, when set, must be this process (a child inheriting the variables must
    not ping for its parent).
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


class Watchdog:
    """A named thread that pings systemd while ``alive()`` is true."""

    def __init__(self, notifier: Notifier, interval: float, alive: Callable[[], bool]) -> None:
        self.notifier = notifier
        self.interval = interval
        self.alive = alive
        self.pings = 0
        self.missed = 0
        self._stalled = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="smfel-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.alive():
                if self._stalled:
                    log.info("ECG samples flow again: pinging the systemd watchdog")
                    self._stalled = False
                self.notifier.watchdog()
                self.pings += 1
            else:
                if not self._stalled:
                    log.warning("no ECG samples recently: not pinging the systemd watchdog")
                    self._stalled = True
                self.missed += 1

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
