"""Streaming IIR/FIR filters with carried state, bit-identical whatever the chunking.

``scipy.signal.sosfilt`` runs the biquad recursion sample by sample in C; carrying the final
state ``zf`` of one chunk into the next as ``zi`` performs exactly the same arithmetic as one
call over the concatenation, so results do not depend on where the stream was cut. (FIR
``lfilter`` with ``zi`` is not bit-identical across splits, which is why FIR steps are written
out elsewhere.)

The cleaning chain for beat features removes baseline wander (2nd-order Butterworth high-pass,
0.5 Hz), mains interference (notches at 50 and 60 Hz, so one chain serves every country) and
high-frequency noise (4th-order Butterworth low-pass, 40 Hz): the usual ECG monitoring band.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.signal import butter, iirnotch, sosfilt, tf2sos

__all__ = ["SOSStream", "cleaning_sos", "qrs_band_sos"]

F64 = NDArray[np.float64]


def cleaning_sos(fs: float) -> F64:
    """High-pass 0.5 Hz, notches at 50 and 60 Hz (below Nyquist), low-pass 40 Hz."""
    parts = [butter(2, 0.5, btype="highpass", fs=fs, output="sos")]
    for mains in (50.0, 60.0):
        if mains < 0.45 * fs:
            b, a = iirnotch(mains, 25.0, fs=fs)
            parts.append(tf2sos(b, a))
    parts.append(butter(4, min(40.0, 0.45 * fs), btype="lowpass", fs=fs, output="sos"))
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float64)


def qrs_band_sos(fs: float) -> F64:
    """The 5-15 Hz pass band where QRS energy dominates (Pan and Tompkins 1985)."""
    return np.ascontiguousarray(butter(2, [5.0, 15.0], btype="bandpass", fs=fs, output="sos"))


class SOSStream:
    """A cascade of biquads applied chunk by chunk with its state carried over."""

    def __init__(self, sos: ArrayLike) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self._zi = np.zeros((self.sos.shape[0], 2))

    def __call__(self, x: F64) -> F64:
        y, self._zi = sosfilt(self.sos, x, zi=self._zi)
        return np.asarray(y, dtype=np.float64)
