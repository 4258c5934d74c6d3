"""Streaming beat extraction: R peaks to feature vectors, with labels from the stream.

Each beat's features (length :data:`N_FEATURES`) are computed by
:class:`smfel.sensors.features.BeatFeatures` from the cleaned ECG segment around the R peak
(``PRE`` before to ``POST`` after it) and the RR intervals before and after the beat: rhythm
and irregularity relative to the patient's recent RR intervals, and morphology against the
patient's running average beat. Every running estimate is causal, so a device and
:func:`smfel.sensors.records.load_record_beats` compute exactly the same numbers.

A beat is emitted once the samples after its R peak and the next R peak are known (or after
``RR_MAX`` seconds without one), so latency is bounded by the detector's latency plus the
window. The first beat of a stream (or after a gap) has no previous RR interval and is not
emitted. Reference labels (WFDB symbols carried by the chunks) are attached to the detected beat
nearest to them within ``MATCH_TOLERANCE`` (150 ms, the EC57 window).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from smfel.sensors.aami import aami_class
from smfel.sensors.chunk import MODEL_FS, Chunk
from smfel.sensors.features import FEATURE_NAMES, N_FEATURES, BeatFeatures
from smfel.sensors.filters import SOSStream, cleaning_sos
from smfel.sensors.qrs import QRSDetector

__all__ = [
    "FEATURE_NAMES",
    "MATCH_TOLERANCE",
    "N_FEATURES",
    "RR_MAX",
    "Beat",
    "BeatExtractor",
]

F64 = NDArray[np.float64]

RR_MAX = 3.0  # seconds; longer intervals are clipped (and end the wait for a next beat)
MATCH_TOLERANCE = 0.150


@dataclass(frozen=True, slots=True, eq=False)
class Beat:
    """One heartbeat: R peak (absolute sample index), time, features and optional labels."""

    sample: int
    time: float
    features: F64
    rr_prev: float
    rr_next: float
    symbol: str | None = None
    label: str | None = None


class BeatExtractor:
    """``push(chunk) -> list[Beat]`` and ``flush() -> list[Beat]`` over one lead at ``fs``.

    ``peaks="detected"`` finds R peaks with :class:`QRSDetector`; ``peaks="labels"`` takes them
    from the stream's reference labels (the "annotated beats" evaluation), with the same
    filters and features.
    """

    def __init__(
        self, fs: float = MODEL_FS, peaks: Literal["detected", "labels"] = "detected"
    ) -> None:
        if peaks not in ("detected", "labels"):
            raise ValueError(f"peaks must be 'detected' or 'labels', got {peaks!r}")
        self.fs = fs
        self.peaks = peaks
        shape = BeatFeatures(fs)
        self.pre = shape.pre
        self.width = shape.length
        self.rr_max = int(round(RR_MAX * fs))
        self.tol = int(round(MATCH_TOLERANCE * fs))
        self.unmatched_labels = 0
        self._reset_stream(0)

    def _reset_stream(self, start: int) -> None:
        self._det = QRSDetector(self.fs, start) if self.peaks == "detected" else None
        self._clean = SOSStream(cleaning_sos(self.fs)) if self.peaks == "labels" else None
        self._n = start
        self._t_base: tuple[int, float] | None = None
        self._buf = np.zeros(0)
        self._base = start
        self._peaks: list[int] = []  # final R peaks not yet emitted (plus the last emitted)
        self._prev: int | None = None
        self._labels: list[tuple[int, str]] = []
        self._features = BeatFeatures(self.fs)

    # -- public -------------------------------------------------------------------------------
    def push(self, chunk: Chunk) -> list[Beat]:
        out: list[Beat] = []
        if chunk.start != self._n:
            if chunk.start < self._n:
                raise ValueError(f"chunk starts at {chunk.start}, before {self._n}")
            out += self.flush()
            self._reset_stream(chunk.start)
        if self._t_base is None:
            self._t_base = (chunk.start, chunk.t0)
        x = chunk.samples
        if self._det is not None:
            clean, new = self._det.push(x)
            horizon = self._det.horizon
        else:
            assert self._clean is not None
            clean = self._clean(x)
            new = []
            last = (
                self._peaks[-1] if self._peaks else (self._prev if self._prev is not None else -1)
            )
            for s, _ in sorted(chunk.labels):
                if s > last:  # one beat per sample index, in order
                    new.append(s)
                    last = s
            horizon = chunk.end
        self._labels.extend(chunk.labels)
        self._buf = np.concatenate([self._buf, clean])
        self._n = chunk.end
        self._peaks.extend(new)
        out += self._emit(horizon, final=False)
        self._trim(horizon)
        return out

    def flush(self) -> list[Beat]:
        """End of stream: emit every remaining beat (a missing window tail is zero-padded)."""
        new = self._det.flush() if self._det is not None else []
        self._peaks.extend(new)
        out = self._emit(self._n, final=True)
        self.unmatched_labels += len(self._labels)
        self._labels.clear()
        return out

    # -- internals ------------------------------------------------------------------------------
    def _emit(self, horizon: int, *, final: bool) -> list[Beat]:
        out: list[Beat] = []
        peaks = self._peaks
        k = 0
        while k < len(peaks):
            r = peaks[k]
            nxt = peaks[k + 1] if k + 1 < len(peaks) else None
            if nxt is None and not final and horizon < r + self.rr_max:
                break
            if not final and self._n < r - self.pre + self.width:
                break
            if self._prev is not None:
                out.append(self._beat(r, self._prev, nxt))
            else:
                self._drop_labels_before(r + self.tol + 1, keep_near=r)
            self._prev = r
            k += 1
        del peaks[:k]
        return out

    def _window(self, r: int) -> F64:
        a = r - self.pre - self._base
        w = np.zeros(self.width)
        lo, hi = max(a, 0), min(a + self.width, len(self._buf))
        if hi > lo:
            w[lo - a : hi - a] = self._buf[lo:hi]
        return w

    def _beat(self, r: int, prev: int, nxt: int | None) -> Beat:
        fs = self.fs
        rr_prev = min(r - prev, self.rr_max) / fs
        rr_next = (min(nxt - r, self.rr_max) if nxt is not None else self.rr_max) / fs
        feats = self._features.update(self._window(r), rr_prev, rr_next)
        symbol = self._take_label(r)
        assert self._t_base is not None
        t = self._t_base[1] + (r - self._t_base[0]) / fs
        return Beat(r, t, feats, rr_prev, rr_next, symbol, aami_class(symbol))

    def _take_label(self, r: int) -> str | None:
        labels = self._labels
        # Labels too early for this beat can no longer match any beat.
        self._drop_labels_before(r - self.tol)
        best = None
        for j, (s, _) in enumerate(labels):
            if s > r + self.tol:
                break
            if best is None or abs(s - r) < abs(labels[best][0] - r):
                best = j
        if best is None:
            return None
        sym = labels.pop(best)[1]
        return sym

    def _drop_labels_before(self, limit: int, keep_near: int | None = None) -> None:
        labels = self._labels
        j = bisect.bisect_left(labels, (limit, ""))
        if keep_near is not None:
            # The unemitted first beat consumes its own label rather than leaving it unmatched.
            near = [x for x in labels[:j] if abs(x[0] - keep_near) <= self.tol]
            if near:
                labels.remove(min(near, key=lambda x: abs(x[0] - keep_near)))
                j -= 1
        self.unmatched_labels += j
        del labels[:j]

    def _trim(self, horizon: int) -> None:
        oldest = min([horizon, *self._peaks[:1]] + ([self._prev] if self._prev is not None else []))
        keep_from = min(oldest, self._n) - self.pre - 1
        cut = keep_from - self._base
        if cut > 0:
            self._buf = self._buf[cut:]
            self._base += cut
