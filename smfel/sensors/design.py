"""Digital filter design in numpy alone: Butterworth and notch biquads, Kaiser-windowed sinc.

The device's signal path must not import scipy (``scipy.signal`` alone costs about 50 MB of
resident memory and most of a second of CPU on a small board), yet its filters must be the
textbook ones. These are the classical designs, written out:

* :func:`butterworth_sos`: the analog Butterworth prototype (poles evenly spaced on the left
  unit half-circle, Butterworth 1930), moved to the cut-off(s) by the low-pass to low-pass,
  high-pass or band-pass substitution and mapped to the z-plane by the bilinear transform with
  the band edges prewarped (``tan(pi f / fs)``), so the digital edges land exactly where asked
  (Oppenheim and Schafer, *Discrete-Time Signal Processing*, 3rd ed., sec. 7.2). Each pair of
  conjugate poles is one biquad; the pair nearest the unit circle takes the zeros nearest to it
  and goes last, and the gain goes in the first section (the usual ordering, which keeps the
  sharpest resonance at the end of the cascade).
* :func:`notch_sos`: the second-order IIR notch of width ``f0 / Q`` at -3 dB (Orfanidis,
  *Introduction to Signal Processing*, sec. 11.3).
* :func:`kaiser_lowpass`: a windowed-sinc FIR low-pass with a Kaiser window (Kaiser 1974),
  scaled to unit gain at DC.

Each agrees with its ``scipy.signal`` counterpart (``butter(..., output="sos")``,
``iirnotch`` and ``firwin(..., window=("kaiser", beta))``) to rounding; the tests check it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = ["butterworth_sos", "kaiser_lowpass", "notch_sos"]

F64 = NDArray[np.float64]
C128 = NDArray[np.complex128]


def _prewarped(freq: float, fs: float) -> float:
    """The analog frequency that the bilinear transform ``s = (z - 1) / (z + 1)`` maps to
    ``freq`` Hz at the sampling rate ``fs``."""
    if not 0.0 < freq < fs / 2.0:
        raise ValueError(f"cut-off frequencies must be in (0, fs/2) = (0, {fs / 2}), got {freq}")
    return math.tan(math.pi * freq / fs)


def _section(p: complex, zeros: tuple[float, float]) -> F64:
    """The biquad with poles ``p``, ``conj(p)`` and the two real zeros given (unit gain)."""
    z1, z2 = zeros
    return np.array([1.0, -(z1 + z2), z1 * z2, 1.0, -2.0 * p.real, abs(p) ** 2])


def butterworth_sos(
    order: int, cutoff: float | Sequence[float], kind: Literal["lowpass", "highpass", "bandpass"],
    fs: float,
) -> F64:  # fmt: skip
    """Second-order sections ``(order // 2, 6)`` (``2 * order // 2`` rows for a band-pass) of a
    digital Butterworth filter; ``cutoff`` in Hz (two edges for a band-pass), ``order`` even."""
    if order < 2 or order % 2:
        raise ValueError(f"order must be an even number >= 2, got {order}")
    edges = np.atleast_1d(np.asarray(cutoff, dtype=np.float64))
    if edges.shape != ((2,) if kind == "bandpass" else (1,)):
        raise ValueError(
            f"a {kind} takes {2 if kind == 'bandpass' else 1} cut-off(s), got {cutoff}"
        )
    warped = [_prewarped(float(f), fs) for f in edges]
    # Prototype poles in the upper half plane (their conjugates are implicit), cut-off 1 rad/s.
    k = np.arange(1, order // 2 + 1)
    proto: C128 = np.exp(1j * np.pi * (0.5 + (2 * k - 1) / (2.0 * order)))
    n_zeros: dict[float, int]
    if kind == "lowpass":
        analog = warped[0] * proto
        gain = warped[0] ** order
        n_zeros = {-1.0: order}  # the zeros at s = infinity
    elif kind == "highpass":
        analog = warped[0] / proto
        gain = 1.0  # the prototype's gain, 1 / prod(-p) = 1
        n_zeros = {1.0: order}  # the zeros at s = 0
    elif kind == "bandpass":
        lo, hi = warped
        if not lo < hi:
            raise ValueError(f"band edges must increase, got {cutoff}")
        w0sq, bw = lo * hi, hi - lo
        # s -> (s^2 + w0^2) / (s bw): each prototype pole p becomes the two roots of
        # s^2 - p bw s + w0^2 = 0.
        half = proto * (bw / 2.0)
        root = np.sqrt(half * half - w0sq)
        analog = np.concatenate([half + root, half - root])
        gain = bw**order
        n_zeros = {1.0: order, -1.0: order}
    else:
        raise ValueError(f"kind must be 'lowpass', 'highpass' or 'bandpass', got {kind!r}")
    poles = (1.0 + analog) / (1.0 - analog)
    # Gain of the bilinear map: prod(1 - z_analog) / prod(1 - p_analog) over all (conjugate
    # pairs included); zeros at s = 0 contribute 1 and those at infinity none.
    gain *= float(np.real(1.0 / np.prod(np.concatenate([1.0 - analog, 1.0 - analog.conj()]))))
    left = dict(n_zeros)
    sections: list[F64] = []
    for p in sorted(poles.tolist(), key=lambda q: abs(1.0 - abs(q))):  # nearest the circle first
        pair: list[float] = []
        for _ in range(2):
            z = min((z for z, n in left.items() if n), key=lambda z: abs(p - z))
            left[z] -= 1
            pair.append(z)
        sections.append(_section(p, (pair[0], pair[1])))
    sos = np.array(sections[::-1])
    sos[0, :3] *= gain
    return sos


def notch_sos(f0: float, q: float, fs: float) -> F64:
    """One biquad ``(1, 6)`` rejecting ``f0`` Hz, -3 dB bandwidth ``f0 / q``."""
    if not 0.0 < f0 < fs / 2.0:
        raise ValueError(f"notch frequency must be in (0, fs/2) = (0, {fs / 2}), got {f0}")
    if not q > 0:
        raise ValueError(f"quality factor must be positive, got {q}")
    w0 = 2.0 * math.pi * f0 / fs
    # Bandwidth at -3 dB: tan(bw / 2) with bw = w0 / q sets the pole radius.
    g = 1.0 / (1.0 + math.tan(w0 / q / 2.0))
    c = -2.0 * math.cos(w0)
    return np.array([[g, g * c, g, 1.0, g * c, 2.0 * g - 1.0]])


def kaiser_lowpass(numtaps: int, cutoff: float, beta: float) -> F64:
    """Linear-phase FIR low-pass: ``numtaps`` taps, ``cutoff`` as a fraction of Nyquist, a
    Kaiser window of shape ``beta``; the taps sum to one (unit gain at DC)."""
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if not 0.0 < cutoff < 1.0:
        raise ValueError(f"cutoff must be in (0, 1) (a fraction of Nyquist), got {cutoff}")
    m = np.arange(numtaps) - (numtaps - 1) / 2.0
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(numtaps, beta)
    return np.asarray(h / np.sum(h), dtype=np.float64)
