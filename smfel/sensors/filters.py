"""Streaming IIR filters with carried state, bit-identical whatever the chunking, numpy only.

A cascade of biquads is one linear state-space system (A, B, C, D) of order ``2 x sections``,
assembled from transposed direct-form-II sections (whose states stay of the signal's size, so
the system is well conditioned). Over a block of ``BLOCK`` samples starting in state ``x``::

    y = T u + O x            T: lower-triangular Toeplitz matrix of the impulse response
    x' = Ctrl u + A^BLOCK x  O: rows C A^i;  Ctrl: columns A^(BLOCK-1-j) B

so one matrix-vector product ``[y; x'] = M [u; x]`` advances a whole block; only that product
runs in a Python loop, never the sample recursion. Blocks are counted from the start of the
stream and every block is computed by the same product (same matrix, same buffers, same
shapes), so every output is the same sequence of floating-point operations for any chunking.

A block that a chunk ends inside is computed with the samples it has, and only those are
emitted; the block is computed again, whole, when the next chunk completes it. Because ``T`` is
lower-triangular, an output sample's row multiplies every later sample of its block by an exact
zero, whatever is in the buffer there, so the rows of the partial and of the whole product are
equal bit for bit: no latency, and the absolute index of every output sample is its input's. A
non-finite sample turns every later output non-finite, as in any recursive filter (and then
also the outputs of its own block before it, when the block was computed whole).

The cleaning chain for beat features removes baseline wander (2nd-order Butterworth high-pass,
0.5 Hz), mains interference (notches at 50 and 60 Hz, so one chain serves every country) and
high-frequency noise (4th-order Butterworth low-pass, 40 Hz): the usual ECG monitoring band.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.sensors.design import butterworth_sos, notch_sos

__all__ = ["BLOCK", "SOSStream", "cleaning_sos", "qrs_band_sos"]

F64 = NDArray[np.float64]

BLOCK = 128
"""Samples advanced by one matrix-vector product. Larger blocks mean fewer Python steps but more
arithmetic per sample (about ``BLOCK + 2 x order`` multiply-adds); 128 was the fastest of 32-192
for one-second and quarter-second chunks, the matrix (150 KB for the cleaning chain) still
fitting a small board's cache."""


def cleaning_sos(fs: float) -> F64:
    """High-pass 0.5 Hz, notches at 50 and 60 Hz (below Nyquist), low-pass 40 Hz."""
    parts = [butterworth_sos(2, 0.5, "highpass", fs)]
    for mains in (50.0, 60.0):
        if mains < 0.45 * fs:
            parts.append(notch_sos(mains, 25.0, fs))
    parts.append(butterworth_sos(4, min(40.0, 0.45 * fs), "lowpass", fs))
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float64)


def qrs_band_sos(fs: float) -> F64:
    """The 5-15 Hz pass band where QRS energy dominates (Pan and Tompkins 1985)."""
    return np.ascontiguousarray(butterworth_sos(2, [5.0, 15.0], "bandpass", fs))


def _state_space(sos: F64) -> tuple[F64, F64, F64, float]:
    """(A, B, C, D) of the cascade, states ordered section by section (transposed DF-II)."""
    n = 2 * len(sos)
    A = np.zeros((n, n))
    B = np.zeros(n)
    C = np.zeros(n)
    D = 1.0
    for s, (b0, b1, b2, _, a1, a2) in enumerate(sos / sos[:, 3:4]):
        i = 2 * s
        # This section's input is the cascade so far: u_s = C x + D u. With y_s = b0 u_s + s0,
        # s0' = b1 u_s - a1 y_s + s1 and s1' = b2 u_s - a2 y_s.
        g = np.array([b1 - a1 * b0, b2 - a2 * b0])
        A[i : i + 2, :i] = np.outer(g, C[:i])
        A[i : i + 2, i : i + 2] = [[-a1, 1.0], [-a2, 0.0]]
        B[i : i + 2] = g * D
        C[:i] *= b0
        C[i] = 1.0
        D *= b0
    return A, B, C, D


def _block_matrix(sos: F64, block: int) -> F64:
    """``M`` with ``[y; x'] = M [u; x]`` over one block of ``block`` samples."""
    A, B, C, D = _state_space(sos)
    n = len(B)
    M = np.zeros((block + n, block + n))
    AjB = np.empty((block, n))  # A^j B
    g = B.copy()
    P = np.eye(n)  # A^i
    for j in range(block):
        AjB[j] = g
        M[j, block:] = C @ P  # O: the state's contribution to y_j
        g = A @ g
        P = A @ P
    h = np.concatenate([[D], AjB[:-1] @ C])  # impulse response h_0 .. h_(block-1)
    for i in range(block):
        M[i, : i + 1] = h[i::-1]
    M[block:, :block] = AjB[::-1].T  # Ctrl
    M[block:, block:] = P  # A^block
    return M


class SOSStream:
    """A cascade of biquads applied chunk by chunk with its state carried over.

    The output has the input's length and is identical, bit for bit, for any split of the
    stream into chunks; it agrees with a direct biquad recursion to rounding.
    """

    def __init__(self, sos: ArrayLike, *, block: int = BLOCK) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        if self.sos.ndim != 2 or self.sos.shape[1] != 6 or len(self.sos) == 0:
            raise ValueError(f"sos must have shape (sections, 6), got {self.sos.shape}")
        if not (self.sos[:, 3] != 0).all():
            raise ValueError("sos: every section needs a0 != 0")
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.block = block
        self._M = _block_matrix(self.sos, block)
        # [u; x]: the current block's samples and its start state. Past the samples received,
        # u holds zeros or the previous block's samples: rows emitted multiply them by 0.
        self._v = np.zeros(len(self._M))
        self._z = np.zeros(len(self._M))  # M @ v, always into the same buffer
        self._fill = 0  # samples of the current block received (and already emitted)

    def __call__(self, x: ArrayLike) -> F64:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"samples must be one-dimensional, got shape {x.shape}")
        dot, v, z, nb = self._M.dot, self._v, self._z, self.block
        y = np.empty(len(x))
        pos, i = self._fill, 0
        while i < len(x):
            take = min(nb - pos, len(x) - i)
            end = pos + take
            v[pos:end] = x[i : i + take]
            dot(v, z)
            y[i : i + take] = z[pos:end]
            i, pos = i + take, end
            if pos == nb:
                v[nb:] = z[nb:]  # the next block's start state
                pos = 0
        self._fill = pos
        # Different BLAS kernels may start a sum from its first product: a sum of exact zeros
        # could then be -0.0 or +0.0 depending on the ignored samples. Make it +0.0.
        y += 0.0
        return y
