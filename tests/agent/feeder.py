"""A pseudo-terminal ECG front-end for the agent tests: real MIT-BIH samples and reference labels
sent as the serial binary frames of :mod:`smfel.sensors.framing`."""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from smfel.sensors.aami import is_beat
from smfel.sensors.framing import encode_frame
from smfel.sensors.wfdbio import read_annotations, read_record

FRAME = 36  # samples per frame: 0.1 s at 360 Hz, so at most one beat label per frame
GAIN = 200.0  # ADC counts per mV (the serial source's default)


def frames(mitdb: Path, record: str, seconds: float) -> Iterator[bytes]:
    """Frames of the first ``seconds`` of ``record`` (lead MLII) with its beat labels."""
    rec = read_record(mitdb, record)
    counts = np.rint(rec.mv("MLII") * GAIN).astype(np.int64)
    n = min(len(counts), int(seconds * rec.fs))
    ann = read_annotations(mitdb, record)
    labels = {int(s): sym for s, sym in zip(ann.samples, ann.symbols, strict=True) if is_beat(sym)}
    for k, start in enumerate(range(0, n - FRAME + 1, FRAME)):
        label = next(
            ((s - start, labels[s]) for s in range(start, start + FRAME) if s in labels), None
        )
        if label is None:
            yield encode_frame(k % 65536, counts[start : start + FRAME])
        else:
            yield encode_frame(k % 65536, counts[start : start + FRAME], label[1], label[0])


class PtyFeeder:
    """The slave side is the device path the agent opens; a thread writes frames to the master.

    ``rate`` is the speed-up over real time (0: as fast as the reader takes them). Writing stops
    at the end of the frames or when :meth:`pause` is called; :meth:`resume` goes on.
    """

    def __init__(self, frames: Iterator[bytes], rate: float = 0.0) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # before any byte flows, or the line discipline mangles frames
        self.path = os.ttyname(self.slave)
        self._frames = frames
        self._rate = rate
        self.sent = 0
        self.done = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="test-pty-feeder", daemon=True)

    def start(self) -> PtyFeeder:
        self._thread.start()
        return self

    def pause(self) -> None:
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def _run(self) -> None:
        t0 = time.monotonic()
        for frame in self._frames:
            while not self._go.wait(0.1):
                if self._closing:
                    return
            if self._closing:
                return
            if self._rate > 0:
                due = t0 + self.sent * FRAME / 360.0 / self._rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                os.write(self.master, frame)
            except OSError:
                return
            self.sent += 1
        self.done.set()

    def close(self) -> None:
        self._closing = True
        self._go.set()
        self._thread.join(timeout=5)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
