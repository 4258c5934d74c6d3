"""Streaming polyphase resampling from a board's rate to the model's rate.

A windowed-sinc FIR low-pass at ``min(fs_in, fs_out) / 2`` is applied in polyphase form (only
the taps that meet non-zero upsampled samples are evaluated), with the last input samples
carried between chunks. Every output sample is the same sequence of products and additions
whatever the chunking, so the output is bit-identical for any split of the input.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from smfel.sensors.chunk import Chunk
from smfel.sensors.design import kaiser_lowpass

__all__ = ["Resampler"]


class Resampler:
    """Resample a stream of chunks from ``fs_in`` to ``fs_out`` (a rational ratio)."""

    def __init__(self, fs_in: float, fs_out: float, *, half_taps: int = 12) -> None:
        if not (fs_in > 0 and fs_out > 0):
            raise ValueError("rates must be positive")
        ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
        self.fs_in = fs_in
        self.fs_out = fs_in * ratio.numerator / ratio.denominator
        self.up, self.down = ratio.numerator, ratio.denominator
        n_phase_taps = 2 * half_taps
        numtaps = n_phase_taps * self.up
        h = kaiser_lowpass(numtaps, 1.0 / max(self.up, self.down), 6.0) * self.up
        # poly[p, t] = h[p + t * up]: the taps that multiply input sample q - t for phase p.
        self._poly: NDArray[np.float64] = np.ascontiguousarray(h.reshape(n_phase_taps, self.up).T)
        self._k = n_phase_taps
        self._delay = (numtaps - 1) / 2.0  # group delay in upsampled samples
        self._hist = np.zeros(self._k - 1)
        self._n_in = 0  # absolute index of the next input sample
        self._n_out = 0  # absolute index of the next output sample

    def out_index(self, i: int) -> int:
        """The output sample that corresponds to input sample ``i`` (delay included)."""
        return int(round((i * self.up + self._delay) / self.down))

    def push(self, chunk: Chunk) -> Chunk:
        x = np.asarray(chunk.samples, dtype=np.float64)
        if chunk.start != self._n_in:
            # A gap (or the first chunk): restart the filter at the new position.
            self._hist[:] = 0.0
            self._n_in = chunk.start
            self._n_out = -(-(chunk.start * self.up) // self.down)
        ext = np.concatenate([self._hist, x])
        base = self._n_in - (self._k - 1)  # absolute input index of ext[0]
        n_end = self._n_in + len(x)
        # Every output k with q_k = floor(k * down / up) <= n_end - 1, i.e. k * down < n_end * up.
        k_end = max(-(-(n_end * self.up) // self.down), self._n_out)
        k = np.arange(self._n_out, k_end, dtype=np.int64)
        m = k * self.down
        q = m // self.up
        p = m % self.up
        idx = (q - base)[:, None] - np.arange(self._k)[None, :]
        # Accumulate tap by tap: a row-wise sum would add in an order that depends on the
        # number of rows, and the result must not depend on the chunking.
        taps = self._poly[p]
        y = np.zeros(len(k))
        for t in range(self._k):
            y += ext[idx[:, t]] * taps[:, t]
        labels = tuple((self.out_index(i), s) for i, s in chunk.labels)
        t0 = chunk.t0 + (self._n_out / self.fs_out - chunk.start / self.fs_in)
        out = Chunk(self._n_out, self.fs_out, y, labels, t0)
        self._hist = ext[len(ext) - (self._k - 1) :].copy()
        self._n_in = n_end
        self._n_out = int(k_end)
        return out
