"""``wfdb://DIR/RECORD?lead=MLII&speed=1&start=S&end=S``: replay a WFDB record with its labels.

The lead is chosen by signal name (record 114 of MIT-BIH has its leads swapped). ``speed`` 1 is
real time, 0 (or ``fast``) as fast as possible; ``start`` and ``end`` (seconds) replay part of
the record. Reference beat annotations become chunk labels; sample indices stay those of the
record, so labels and detections can be compared with the annotation file directly. Samples are
read from the file chunk by chunk, so a replay's memory does not depend on the record's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from smfel.sensors.aami import is_beat
from smfel.sensors.chunk import Chunk
from smfel.sensors.source import Pacer, Source
from smfel.sensors.wfdbio import SignalFile, read_annotations

__all__ = ["WfdbSource"]


class WfdbSource(Source):
    def __init__(
        self,
        url: str,
        path: str,
        *,
        lead: str = "MLII",
        speed: float = 1.0,
        start: float = 0.0,
        end: float | None = None,
        chunk_seconds: float = 0.5,
        annotator: str = "atr",
    ) -> None:
        p = Path(path)
        self.directory, self.record = p.parent, p.name
        self.lead = lead
        self.speed = speed
        self.start_s = start
        self.end_s = end
        self.chunk_seconds = chunk_seconds
        self.annotator = annotator
        # The rate is known once the header is read, in open().
        super().__init__(url, 0.0)

    def open(self) -> None:
        old = getattr(self, "_file", None)
        if old is not None:
            old.close()
        self._file = SignalFile(self.directory, self.record)
        try:
            self._file.mv(self.lead, 0, 0)  # a clear error now for a lead the record lacks
        except Exception:
            self._file.close()
            raise
        self.fs = self._file.fs
        n = len(self._file)
        self._i0 = min(n, max(0, int(round(self.start_s * self.fs))))
        self._i1 = (
            n if self.end_s is None else min(n, max(self._i0, int(round(self.end_s * self.fs))))
        )
        self._labels: list[tuple[int, str]] = []
        ann_path = self.directory / f"{self.record}.{self.annotator}"
        if ann_path.exists():
            ann = read_annotations(self.directory, self.record, self.annotator)
            self._labels = [
                (int(s), sym)
                for s, sym in zip(ann.samples, ann.symbols, strict=True)
                if is_beat(sym) and self._i0 <= s < self._i1
            ]
        super().open()

    def close(self) -> None:
        super().close()
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()

    def _chunks(self) -> Iterator[Chunk]:
        step = max(1, int(round(self.chunk_seconds * self.fs)))
        pacer = Pacer(self.fs, self.speed)
        wall0 = pacer.wall0 - self._i0 / self.fs
        labels = self._labels
        samples = np.array([s for s, _ in labels], dtype=np.int64)
        for a in range(self._i0, self._i1, step):
            if self.closed:
                return
            b = min(a + step, self._i1)
            pacer.wait_until(b - self._i0)
            lo, hi = np.searchsorted(samples, [a, b])
            x = self._file.mv(self.lead, a, b)
            self.counters.frames += 1
            self.counters.samples += len(x)
            yield Chunk(a, self.fs, x, tuple(labels[lo:hi]), wall0 + a / self.fs)
