"""``synthetic://?hr=72&pvc=0.05&apc=0.02&noise=0.05&seed=1&duration=S``: a labelled synthetic ECG.

Each beat is a sum of Gaussian waves (P, Q, R, S, T) placed relative to its R peak, the
morphological model of McSharry et al., "A dynamical model for generating synthetic
electrocardiogram signals", IEEE TBME 50(3) (2003), evaluated directly in time rather than
integrated. Rhythm: sinus RR with respiratory sinus arrhythmia; premature ventricular beats
(``V``: early, no P wave, wide QRS, discordant T, compensatory pause) and premature atrial
beats (``A``: early, abnormal P wave, normal QRS, no compensatory pause) occur with the given
probabilities. Noise: white noise of ``noise`` mV, baseline wander and a little mains hum.
Everything derives from ``seed``; the signal does not depend on the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from smfel.sensors.chunk import Chunk
from smfel.sensors.source import Pacer, Source

__all__ = ["SyntheticSource", "beat_waves"]

# (offset s, amplitude mV, width s) of the P, Q, R, S, T waves of each beat type.
_WAVES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "N": ((-0.20, 0.15, 0.025), (-0.03, -0.12, 0.010), (0.0, 1.10, 0.011), (0.03, -0.25, 0.011),
          (0.28, 0.30, 0.055)),
    "A": ((-0.17, -0.10, 0.020), (-0.03, -0.12, 0.010), (0.0, 1.05, 0.011), (0.03, -0.25, 0.011),
          (0.28, 0.30, 0.055)),
    "V": ((-0.03, 0.10, 0.020), (0.0, 1.40, 0.035), (0.07, -0.55, 0.035), (0.30, -0.45, 0.075),
          (0.45, 0.0, 0.1)),
}  # fmt: skip

_BLOCK = 1.0  # seconds of noise drawn per random block, so chunking does not change the noise


def beat_waves(kind: str, rr: float) -> NDArray[np.float64]:
    """The (offset, amplitude, width) rows of a beat; the T wave moves with the RR interval
    (Bazett-like QT shortening)."""
    w = np.array(_WAVES[kind], dtype=np.float64)
    w[-1 if kind != "V" else -2, 0] *= np.sqrt(min(max(rr, 0.4), 1.5))
    return w


class SyntheticSource(Source):
    def __init__(
        self,
        url: str,
        *,
        hr: float = 72.0,
        pvc: float = 0.05,
        apc: float = 0.02,
        noise: float = 0.05,
        seed: int = 1,
        duration: float | None = None,
        speed: float = 1.0,
        fs: float = 360.0,
        chunk_seconds: float = 0.5,
    ) -> None:
        super().__init__(url, fs)
        self.hr = hr
        self.pvc = pvc
        self.apc = apc
        self.noise = noise
        self.seed = seed
        self.duration = duration
        self.speed = speed
        self.chunk_seconds = chunk_seconds

    def _beats(self) -> Iterator[tuple[float, str, float]]:
        """(R time s, symbol, RR before) for successive beats."""
        rng = np.random.default_rng([self.seed, 1])
        mean_rr = 60.0 / self.hr
        t = 0.4
        pending_pause = 0.0
        while True:
            u = rng.random()
            rr = mean_rr * (1.0 + 0.04 * np.sin(2 * np.pi * 0.25 * t)) + rng.normal(0, 0.01)
            if pending_pause:
                rr, kind, pending_pause = pending_pause, "N", 0.0
            elif u < self.pvc:
                kind = "V"
                rr *= 0.62
                pending_pause = 2 * mean_rr - rr
            elif u < self.pvc + self.apc:
                kind = "A"
                rr *= 0.70
            else:
                kind = "N"
            t += rr
            yield t, kind, rr

    def _noise(self, a: int, b: int, cache: dict[int, NDArray[np.float64]]) -> NDArray[np.float64]:
        n_block = int(round(_BLOCK * self.fs))
        out = np.empty(b - a)
        for blk in range(a // n_block, (b - 1) // n_block + 1):
            if blk not in cache:
                cache.clear()
                cache[blk] = np.random.default_rng([self.seed, 2, blk]).normal(0, 1, n_block)
            lo, hi = max(a, blk * n_block), min(b, (blk + 1) * n_block)
            out[lo - a : hi - a] = cache[blk][lo - blk * n_block : hi - blk * n_block]
        t = np.arange(a, b) / self.fs
        wander = 2.0 * np.sin(2 * np.pi * 0.3 * t) + np.sin(2 * np.pi * 0.07 * t + 1.0)
        hum = 0.3 * np.sin(2 * np.pi * 50.0 * t)
        return self.noise * (out + wander + hum)

    def _chunks(self) -> Iterator[Chunk]:
        fs = self.fs
        step = max(1, int(round(self.chunk_seconds * fs)))
        total = None if self.duration is None else int(round(self.duration * fs))
        beats = self._beats()
        window: list[tuple[float, str, float]] = []  # beats that may touch the current chunk
        nxt = next(beats)
        pacer = Pacer(fs, self.speed)
        cache: dict[int, NDArray[np.float64]] = {}
        a = 0
        while (total is None or a < total) and not self.closed:
            b = a + step if total is None else min(a + step, total)
            t_end = b / fs
            while nxt[0] < t_end + 1.0:
                window.append(nxt)
                nxt = next(beats)
            window = [w for w in window if w[0] > a / fs - 1.0]
            t = np.arange(a, b) / fs
            x = self._noise(a, b, cache)
            labels = []
            for r, kind, rr in window:
                w = beat_waves(kind, rr)
                dt = t[:, None] - (r + w[:, 0])[None, :]
                x += (w[:, 1] * np.exp(-0.5 * (dt / w[:, 2]) ** 2)).sum(axis=1)
                i = int(round(r * fs))
                if a <= i < b:
                    labels.append((i, kind))
            pacer.wait_until(b)
            self.counters.frames += 1
            self.counters.samples += b - a
            yield Chunk(a, fs, x, tuple(labels), pacer.wall0 + a / fs)
            a = b
