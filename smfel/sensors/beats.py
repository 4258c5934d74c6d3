"""Streaming beat extraction: R peaks to feature vectors, with labels from the stream.

Each beat's features (length :data:`N_FEATURES`):

* ``WINDOW_POINTS`` samples of the cleaned ECG from 250 ms before to about 417 ms after the R
  peak: ``WINDOW_POINTS`` points ``STRIDE`` samples (33 ms) apart, each the mean of
  ``DECIMATE`` samples (17 ms, a boxcar that keeps the QRS shape), divided by the patient's running QRS amplitude (the peak-to-peak amplitude of
  the windows, averaged as below), which removes most of the amplitude differences between
  patients and electrode placements;
* RR features in seconds: previous, next, local mean (the last ``LOCAL_BEATS`` previous RR
  intervals) and record mean, then previous, next and local divided by the record mean, and the
  prematurity ratios previous/local and previous/next.

The record-level estimates (mean RR, amplitude) are running estimates (cumulative means over
the first ``MEAN_BEATS`` and ``AMP_BEATS`` beats, then exponential averages with those time
constants), so a device computes them causally and
:func:`smfel.sensors.records.load_record_beats` computes exactly the same numbers. The choice
of features was made by leave-one-patient-out cross-validation inside MIT-BIH DS1.

These follow the morphology-plus-interval features of de Chazal et al., IEEE TBME 51(7) (2004)
and Mondejar-Guerra et al., BSPC 47 (2019), in their simplest form, leaving the non-linear
combination to the ELM's hidden layer.

A beat is emitted once the samples after its R peak and the next R peak are known (or after
``RR_MAX`` seconds without one), so latency is bounded by the detector's latency plus the
window. The first beat of a stream (or after a gap) has no previous RR interval and is not
emitted. Reference labels (WFDB symbols carried by the chunks) are attached to the detected beat
nearest to them within ``MATCH_TOLERANCE`` (150 ms, the EC57 window).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from smfel.sensors.aami import aami_class
from smfel.sensors.chunk import MODEL_FS, Chunk
from smfel.sensors.filters import SOSStream, cleaning_sos
from smfel.sensors.qrs import QRSDetector

__all__ = [
    "DECIMATE",
    "FEATURE_NAMES",
    "MATCH_TOLERANCE",
    "N_FEATURES",
    "RR_MAX",
    "WINDOW_POINTS",
    "Beat",
    "BeatExtractor",
]

F64 = NDArray[np.float64]

PRE = 0.250  # seconds of window before the R peak
DECIMATE = 6
STRIDE = 12
WINDOW_POINTS = 20
RR_MAX = 3.0  # seconds; longer intervals are clipped (and end the wait for a next beat)
LOCAL_BEATS = 10
MEAN_BEATS = 500
AMP_BEATS = 100
MIN_AMPLITUDE = 0.01  # mV; guards a flat line
MATCH_TOLERANCE = 0.150

FEATURE_NAMES: tuple[str, ...] = (
    *(f"w{i}" for i in range(WINDOW_POINTS)),
    "rr_prev", "rr_next", "rr_local", "rr_mean", "rr_prev_n", "rr_next_n", "rr_local_n",
    "rr_prev_local", "rr_prev_next",
)  # fmt: skip
N_FEATURES = len(FEATURE_NAMES)


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


class _RecordStats:
    """Running RR and amplitude statistics (the causal record normalisation)."""

    def __init__(self) -> None:
        self.local: deque[float] = deque(maxlen=LOCAL_BEATS)
        self.mean = 0.0
        self.amplitude = 0.0
        self.count = 0

    def update(self, rr: float, amplitude: float) -> tuple[float, float, float]:
        self.local.append(rr)
        self.count += 1
        self.mean += (rr - self.mean) / min(self.count, MEAN_BEATS)
        self.amplitude += (amplitude - self.amplitude) / min(self.count, AMP_BEATS)
        return sum(self.local) / len(self.local), self.mean, max(self.amplitude, MIN_AMPLITUDE)


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
        self.pre = int(round(PRE * fs))
        # STRIDE and DECIMATE are counted at the model's rate; other rates scale them.
        self.stride = max(1, int(round(STRIDE * fs / MODEL_FS)))
        self.decimate = max(1, int(round(DECIMATE * fs / MODEL_FS)))
        self.width = WINDOW_POINTS * self.stride
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
        self._stats = _RecordStats()

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
        acc = w[0 :: self.stride].copy()
        for j in range(1, self.decimate):
            acc += w[j :: self.stride]
        acc *= 1.0 / self.decimate
        return acc

    def _beat(self, r: int, prev: int, nxt: int | None) -> Beat:
        fs = self.fs
        rr_prev = min(r - prev, self.rr_max) / fs
        rr_next = (min(nxt - r, self.rr_max) if nxt is not None else self.rr_max) / fs
        window = self._window(r)
        local, mean, amp = self._stats.update(rr_prev, float(window.max() - window.min()))
        rr = np.array(
            [rr_prev, rr_next, local, mean, rr_prev / mean, rr_next / mean, local / mean,
             rr_prev / local, rr_prev / rr_next]
        )  # fmt: skip
        feats = np.concatenate([window / amp, rr])
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
