"""The other side of the agent in end-to-end tests: an MQTT peer that records what the agent
publishes and plays the aggregator (signed round announcements and global models), and a
runner for ``smfel-agent run`` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smfel.agent.transport import MessageProperties, MqttConfig, MqttTransport

REPO = Path(__file__).resolve().parents[2]


class Peer:
    """Subscribes to ``filters`` on the broker and keeps every message, in arrival order."""

    def __init__(self, host: str, port: int, filters: tuple[str, ...] = ("smfel/v1/#",)) -> None:
        self.transport = MqttTransport(
            MqttConfig(
                host=host,
                port=port,
                client_id=f"test-peer-{uuid.uuid4().hex[:8]}",
                clean_start=True,
            )
        )
        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.filters = filters

    def __enter__(self) -> Peer:
        self.transport.start()
        self.transport.wait_connected(10)
        for f in self.filters:
            self.transport.subscribe(f, self._on_message)
        return self

    def __exit__(self, *exc: object) -> None:
        self.transport.stop()

    def _on_message(self, topic: str, payload: bytes, props: MessageProperties) -> None:
        with self._cond:
            self.messages.append((topic, bytes(payload)))
            self._cond.notify_all()

    def on(self, suffix: str) -> list[bytes]:
        with self._cond:
            return [p for t, p in self.messages if t.endswith(suffix)]

    def wait(
        self, suffix: str, timeout: float, where: Callable[[bytes], bool] = lambda _p: True
    ) -> bytes:
        """The first payload on a topic ending with ``suffix`` that satisfies ``where``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, p in self.messages:
                    if t.endswith(suffix) and where(p):
                        return p
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({t for t, _ in self.messages})
                    raise AssertionError(
                        f"nothing on *{suffix} within {timeout} s; topics seen: {seen}"
                    )
                self._cond.wait(left)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.transport.publish(topic, payload, retain=retain, timeout=10)


def json_where(**want: Any) -> Callable[[bytes], bool]:
    def match(p: bytes) -> bool:
        obj = json.loads(p)
        return all(obj.get(k) == v for k, v in want.items())

    return match


class AgentProcess:
    """``python -m smfel.agent.cli run --config FILE`` with its stderr kept in a file."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = log
        self.env = {**os.environ, "SMFEL_LOG_LEVEL": "INFO", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> AgentProcess:
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "smfel.agent.cli",
                    "run",
                    "--config",
                    str(self.config),
                    *extra,
                ],
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_file_json(
    path: Path, predicate: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """The JSON content of ``path`` once ``predicate`` holds for it."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            last = json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        else:
            if predicate(last):
                return last
        time.sleep(0.05)
    raise AssertionError(f"{path} never satisfied the condition; last content: {last}")
