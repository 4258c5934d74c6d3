"""Streaming QRS detection in the manner of Pan and Tompkins, chunk-invariant and bounded.

Pan and Tompkins, "A real-time QRS detection algorithm", IEEE TBME 32(3):230-236 (1985), with
the decision rules as refined by Hamilton and Tompkins, IEEE TBME 33(12) (1986): band-pass
5-15 Hz, five-point derivative, squaring, 150 ms moving-window integration; peaks of the
integrated signal are classified against adaptive signal and noise levels (threshold at a
quarter of the way from noise to signal), with a 200 ms refractory period, T-wave rejection by
slope inside 360 ms, and search-back at half the threshold after 1.66 mean RR intervals.

Chunk invariance: the band-pass runs with carried filter state (bit-identical for any chunking,
see :mod:`smfel.sensors.filters`); the derivative is written out element-wise; the moving sum
is taken over the squared derivative quantised to integers (int64 cumulative sums are exact),
so the integrated signal does not depend on where the stream was cut. Candidate peaks are local maxima that dominate +-``R`` samples, decided
only once ``R`` samples of look-ahead exist, and the rules run peak by peak (a few per
second), so the beats found are identical for any chunking.

Latency and memory are bounded: a beat is final once a later candidate shows it cannot be
displaced, at most about 1.66 times the (capped) mean RR plus the look-ahead; buffers hold a
few seconds of signal and the pending candidates of one RR interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from smfel.sensors.chunk import MODEL_FS
from smfel.sensors.filters import SOSStream, cleaning_sos, qrs_band_sos

__all__ = ["QRSDetector"]

F64 = NDArray[np.float64]

_SCALE = 2.0**24  # fixed-point scale of the squared derivative (mV^2)
_CAP = 2**40  # clip of one quantised sample, so sums of hours stay far below 2^63


def _running_max(a: F64, radius: int) -> F64:
    """``out[i] = max(a[i - radius : i + radius + 1])``, the window clipped to the array (the
    edge samples repeated, as a running maximum in "nearest" mode would).

    van Herk (1992) / Gil and Werman (1993): cut the padded signal into blocks of the window's
    width; a window then spans the tail of one block and the head of the next, so it is the
    larger of a suffix maximum and a prefix maximum (two accumulations, O(n) for any radius).
    """
    n, w = len(a), 2 * radius + 1
    if n == 0:
        return a.copy()
    blocks = -(-(n + 2 * radius) // w)
    e = np.concatenate([np.full(radius, a[0]), a, np.full(blocks * w - n - radius, a[-1])])
    e = e.reshape(blocks, w)
    head = np.maximum.accumulate(e, axis=1).ravel()
    tail = np.maximum.accumulate(e[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.maximum(tail[:n], head[w - 1 : w - 1 + n])


def _row_medians(a: F64) -> F64:
    """``np.median(a, axis=1, keepdims=True)`` without its generic machinery (the same
    partition and the same mean of the two middle values for an even width)."""
    h = a.shape[1] // 2
    if a.shape[1] % 2:
        return np.partition(a, h, axis=1)[:, h : h + 1]
    part = np.partition(a, (h - 1, h), axis=1)
    return (part[:, h - 1 : h] + part[:, h : h + 1]) / 2.0


@dataclass(slots=True)
class _Cand:
    i: int  # peak of the integrated signal
    v: float  # its height
    r: int  # R peak in the cleaned signal
    slope: float  # largest |derivative| in the integration window before it


class QRSDetector:
    """Feed raw samples (mV) chunk by chunk; get the cleaned signal and the final R peaks."""

    def __init__(self, fs: float = MODEL_FS, start: int = 0) -> None:
        self.fs = fs
        self.win = max(1, int(round(0.150 * fs)))  # integration window
        self.half = max(1, int(round(0.200 * fs)))  # candidate dominance radius = refractory
        self.twave = int(round(0.360 * fs))
        self.loc_back = int(round(0.250 * fs))  # R search window before the MWI peak
        self.rr_cap = 2.0 * fs
        self.learn_until = start + int(round(2.0 * fs))
        self._clean = SOSStream(cleaning_sos(fs))
        self._band = SOSStream(qrs_band_sos(fs))
        self._n = start  # absolute index of the next input sample
        self._bp_tail = np.zeros(4)
        self._cs_tail = np.zeros(self.win, dtype=np.int64)
        self._total = np.int64(0)
        # Rolling buffers of the integrated signal, |derivative| and cleaned signal.
        self._base = start
        self._m = np.zeros(0)
        self._d = np.zeros(0)
        self._c = np.zeros(0)
        self._scan = start + 1  # next index to examine for a candidate
        # Decision state.
        self._learning: list[_Cand] | None = []
        self._spk = 0.0
        self._npk = 0.0
        self._last: _Cand | None = None
        self._rr: list[float] = []
        self._gap = 1.66 * fs  # search-back gap: 1.66 mean RR (one second before any RR)
        self._noise: list[_Cand] = []
        self._horizon = start

    # -- public -------------------------------------------------------------------------------
    @property
    def horizon(self) -> int:
        """No R peak at an index below this will be reported any more."""
        return self._horizon

    def push(self, x: F64) -> tuple[F64, list[int]]:
        """Process the next samples; returns their cleaned version and newly final R peaks."""
        x = np.asarray(x, dtype=np.float64)
        clean = self._clean(x)
        if len(x) == 0:
            return clean, []
        bp = self._band(x)
        e = np.concatenate([self._bp_tail, bp])
        d = (2.0 * e[4:] + e[3:-1] - e[1:-3] - 2.0 * e[:-4]) * 0.125
        self._bp_tail = e[-4:].copy()
        q = np.minimum(np.rint(np.abs(d) * _SCALE), _CAP).astype(np.int64)
        cs = np.cumsum(q) + self._total
        self._total = cs[-1]
        ecs = np.concatenate([self._cs_tail, cs])
        self._cs_tail = ecs[-self.win :].copy()
        m = (ecs[self.win :] - ecs[: -self.win]).astype(np.float64) / (_SCALE * self.win)
        self._m = np.concatenate([self._m, m])
        self._d = np.concatenate([self._d, np.abs(d)])
        self._c = np.concatenate([self._c, clean])
        self._n += len(x)
        beats = self._run(self._candidates(final=False))
        self._trim()
        return clean, beats

    def flush(self) -> list[int]:
        """End of stream: decide the remaining candidates with the look-ahead there is."""
        beats = self._run(self._candidates(final=True))
        if self._learning is not None:
            beats += self._end_learning()
        if self._last is not None and self._n - self._last.i > self._searchback_gap():
            beats += self._searchback(self._n)
        self._horizon = self._n
        self._noise.clear()
        return beats

    # -- candidates -----------------------------------------------------------------------------
    def _candidates(self, *, final: bool) -> list[_Cand]:
        m, base, R = self._m, self._base, self.half
        stop = self._n - (0 if final else R)  # absolute end (exclusive) of decidable indices
        lo, hi = self._scan - base, min(stop, self._n - 1) - base
        if hi <= lo:
            return []
        seg = m[lo - 1 : hi + 1]
        peak = np.flatnonzero((seg[1:-1] > seg[:-2]) & (seg[1:-1] >= seg[2:])) + lo
        if len(peak):
            a, b = max(lo - R, 0), min(hi + R, len(m))  # every window of a peak in [lo, hi)
            peak = peak[m[peak] >= _running_max(m[a:b], R)[peak - a]]
        self._scan = hi + base
        out = []
        if len(peak):
            # R peak: the largest |deviation| of the cleaned signal before the integrated peak.
            # Windows reaching before the stream's start repeat its first sample (only the very
            # first candidates; later ones always have their history in the buffer).
            idx = np.maximum(peak[:, None] + np.arange(-self.loc_back, 1)[None, :], 0)
            cw = self._c[idx]
            dev = np.abs(cw - _row_medians(cw))
            r = idx[np.arange(len(peak)), np.argmax(dev, axis=1)]
            didx = np.maximum(peak[:, None] + np.arange(-self.win, 1)[None, :], 0)
            slope = self._d[didx].max(axis=1)
            for k in range(len(peak)):
                out.append(_Cand(int(peak[k]) + base, float(m[peak[k]]), int(r[k]) + base,
                                 float(slope[k])))  # fmt: skip
        return out

    def _trim(self) -> None:
        keep = max(self.loc_back, self.win, 2 * self.half) + 2
        cut = self._scan - keep - self._base
        if cut > 0:
            self._m = self._m[cut:]
            self._d = self._d[cut:]
            self._c = self._c[cut:]
            self._base += cut

    # -- decision rules -------------------------------------------------------------------------
    def _thresholds(self) -> tuple[float, float]:
        thr1 = self._npk + 0.25 * (self._spk - self._npk)
        return thr1, 0.5 * thr1

    def _searchback_gap(self) -> float:
        return self._gap

    def _accept(self, c: _Cand, weight: float) -> int:
        self._spk = weight * c.v + (1.0 - weight) * self._spk
        if self._last is not None:
            self._rr.append(min(float(c.i - self._last.i), self.rr_cap))
            del self._rr[:-8]
            self._gap = 1.66 * float(np.mean(self._rr))  # only a new RR interval changes it
        self._last = c
        self._noise = [n for n in self._noise if n.i > c.i]
        return c.r

    def _searchback(self, upto: int) -> list[int]:
        """Look back among the noise peaks before ``upto`` for a missed beat."""
        _, thr2 = self._thresholds()
        last_r = self._last.r if self._last is not None else -self.half
        pool = [c for c in self._noise if c.i < upto and c.v > thr2 and c.r - last_r >= self.half]
        if not pool:
            self._noise = [c for c in self._noise if c.i >= upto]
            # Nothing even at half the threshold for a long time: the signal has shrunk (a
            # loose electrode, a change of axis), so let the signal level decay towards noise.
            self._spk = self._npk + 0.5 * (self._spk - self._npk)
            return []
        best = max(pool, key=lambda c: c.v)
        return [self._accept(best, 0.25)]

    def _end_learning(self) -> list[int]:
        cands = self._learning or []
        self._learning = None
        if cands:
            vals = np.array([c.v for c in cands])
            self._spk = float(vals.max()) * 0.5
            self._npk = float(np.median(vals)) * 0.5
        out: list[int] = []
        for c in cands:
            out += self._step(c)
        return out

    def _run(self, cands: list[_Cand]) -> list[int]:
        out: list[int] = []
        for c in cands:
            if self._learning is not None:
                if c.i < self.learn_until:
                    self._learning.append(c)
                    continue
                out += self._end_learning()
            out += self._step(c)
        return out

    def _step(self, c: _Cand) -> list[int]:
        out: list[int] = []
        while self._last is not None and c.i - self._last.i > self._searchback_gap():
            found = self._searchback(c.i)
            if not found:
                break
            out += found
        last = self._last
        if last is not None and (c.i - last.i < self.half or c.r - last.r < self.half):
            pass  # refractory: no second beat within 200 ms (by either position)
        elif c.v > self._thresholds()[0]:
            if last is not None and c.i - last.i < self.twave and c.slope < 0.5 * last.slope:
                self._npk = 0.125 * c.v + 0.875 * self._npk
                self._noise.append(c)
            else:
                out.append(self._accept(c, 0.125))
        else:
            self._npk = 0.125 * c.v + 0.875 * self._npk
            self._noise.append(c)
        # Later beats come from a pending noise peak or from a later candidate.
        lowest = min([n.r for n in self._noise] + [c.i + 1 - self.loc_back])
        self._horizon = max(self._horizon, lowest)
        return out
