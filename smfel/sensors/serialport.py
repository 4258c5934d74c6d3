"""Serial ECG sources through pyserial's ``serial_for_url`` (device paths, ``loop://``,
``socket://``): the only module that imports pyserial.

The port is opened in :meth:`SerialSource.open`, never in the constructor. A read error (the
board was unplugged) closes the port, drops the unfinished frame and reopens the port with
capped exponential backoff and jitter until it is back; nothing here is fatal except
:meth:`close`. Formats are described in :mod:`smfel.sensors.framing`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import serial
from numpy.typing import NDArray

from smfel.sensors.chunk import Chunk
from smfel.sensors.framing import AsciiDecoder, FrameDecoder
from smfel.sensors.source import Source

__all__ = ["SerialSource"]

log = logging.getLogger(__name__)

# A sequence jump this large is a device restart, not lost frames: the sample index continues.
_RESTART_JUMP = 1000


class SerialSource(Source):
    def __init__(
        self,
        url: str,
        port_url: str,
        *,
        baud: int = 115200,
        fmt: Literal["frame", "ascii"] = "frame",
        fs: float = 360.0,
        gain: float = 200.0,
        baseline: float = 0.0,
        chunk_seconds: float = 0.1,
        idle: float | None = None,
        backoff: float = 0.05,
        backoff_max: float = 5.0,
        read_timeout: float = 0.05,
    ) -> None:
        super().__init__(url, fs)
        self.port_url = port_url
        self.baud = baud
        self.format = fmt
        self.gain = gain
        self.baseline = baseline
        self.chunk_seconds = chunk_seconds
        self.idle = idle
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.read_timeout = read_timeout
        self._port: Any = None
        self._stop = threading.Event()
        self._frames = FrameDecoder(self.counters)
        self._ascii = AsciiDecoder(self.counters)

    # -- port lifecycle -------------------------------------------------------------------
    def _open_port(self) -> None:
        port = serial.serial_for_url(
            self.port_url, baudrate=self.baud, timeout=self.read_timeout, do_not_open=True
        )
        port.open()
        self._port = port

    def open(self) -> None:
        """Open the port; if it is absent the first read loop keeps retrying with backoff."""
        try:
            self._open_port()
        except (serial.SerialException, OSError) as err:
            log.warning("cannot open %s yet: %s", self.port_url, err)
        super().open()

    def close(self) -> None:
        self._stop.set()
        self._drop_port()
        super().close()

    def write(self, data: bytes) -> None:
        """Send bytes to the device (some boards take a start command); dropped while the port
        is away."""
        port = self._port
        if port is None:
            return
        try:
            port.write(data)
        except (serial.SerialException, OSError) as err:
            log.warning("write to %s failed: %s", self.port_url, err)

    def _drop_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):  # pragma: no cover - best effort
                pass

    def _reopen(self) -> bool:
        """Reopen with backoff; False when the source was closed meanwhile."""
        attempt = 0
        while not self._stop.is_set():
            delay = min(self.backoff_max, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
            if self._stop.wait(delay):
                return False
            try:
                self._open_port()
            except (serial.SerialException, OSError) as err:
                attempt += 1
                log.debug("reopen of %s failed (%s), attempt %d", self.port_url, err, attempt)
                continue
            self.counters.reopens += 1
            log.info("%s reopened after %d failed attempts", self.port_url, attempt)
            return True
        return False

    def _read(self) -> bytes | None:
        """Some bytes, b"" on timeout, or None when the port failed (it is then dropped)."""
        port = self._port
        try:
            waiting = port.in_waiting
            data: bytes = port.read(max(1, min(waiting, 4096)))
            return data
        except (serial.SerialException, OSError, TypeError, AttributeError) as err:
            self.counters.read_errors += 1
            log.warning("read from %s failed (%s); reopening", self.port_url, err)
            self._drop_port()
            self._frames.reset()
            self._ascii.reset()
            return None

    # -- stream -----------------------------------------------------------------------------
    def _chunks(self) -> Iterator[Chunk]:
        fs = self.fs
        step = max(1, int(round(self.chunk_seconds * fs)))
        pending: list[NDArray[np.int64]] = []
        labels: list[tuple[int, str]] = []
        n_pending = 0
        start = 0  # absolute index of the first pending sample
        nxt = 0  # absolute index of the next sample
        wall0: float | None = None
        last_data = time.monotonic()

        def emit() -> Chunk:
            nonlocal pending, labels, n_pending, start
            x = (np.concatenate(pending).astype(np.float64) - self.baseline) / self.gain
            assert wall0 is not None
            chunk = Chunk(start, fs, x, tuple(labels), wall0 + start / fs)
            pending, labels, n_pending, start = [], [], 0, nxt
            return chunk

        while not self._stop.is_set():
            if self._port is None and not self._reopen():
                break
            data = self._read()
            if data is None:
                continue
            now = time.monotonic()
            if not data:
                if n_pending:
                    yield emit()
                if self.idle is not None and now - last_data > self.idle:
                    break
                continue
            last_data = now
            blocks: list[tuple[int, NDArray[np.int64], tuple[int, str] | None]] = []
            if self.format == "frame":
                for fr in self._frames.feed(data):
                    lost = fr.lost if fr.lost < _RESTART_JUMP else 0
                    blocks.append((lost * len(fr.samples), fr.samples.astype(np.int64), fr.label))
            else:
                vals = self._ascii.feed(data)
                if vals:
                    blocks.append((0, np.asarray(vals, dtype=np.int64), None))
            for skip, samples, label in blocks:
                if wall0 is None:
                    wall0 = time.time() - len(samples) / fs
                if skip:
                    if n_pending:
                        yield emit()
                    nxt += skip
                    start = nxt
                if label is not None:
                    labels.append((nxt + label[0], label[1]))
                pending.append(samples)
                n_pending += len(samples)
                nxt += len(samples)
                if n_pending >= step:
                    yield emit()
        if n_pending:
            yield emit()
