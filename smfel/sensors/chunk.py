"""The stream type every source yields: timestamped chunks of samples with optional labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["MODEL_FS", "Chunk"]

MODEL_FS = 360.0
"""The sampling rate (Hz) the filters, detector and model work at: MIT-BIH's."""


@dataclass(frozen=True, slots=True, eq=False)
class Chunk:
    """Consecutive samples of one lead.

    ``start`` is the absolute index of the first sample in the stream, ``samples`` are in mV,
    ``labels`` are (absolute sample index, WFDB beat symbol) pairs inside the chunk, and ``t0``
    is the unix time of the first sample. A later chunk may start after the end of this one when
    samples were lost (a sequence gap); it never starts before.
    """

    start: int
    fs: float
    samples: NDArray[np.float64]
    labels: tuple[tuple[int, str], ...] = ()
    t0: float = 0.0
    _end: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A read-only view: the caller's array keeps its own flags.
        s = np.asarray(self.samples, dtype=np.float64).view()
        if s.ndim != 1:
            raise ValueError(f"samples must be one-dimensional, got shape {s.shape}")
        if self.start < 0 or not self.fs > 0:
            raise ValueError(f"start must be >= 0 and fs > 0, got {self.start}, {self.fs}")
        s.flags.writeable = False
        object.__setattr__(self, "samples", s)
        object.__setattr__(self, "_end", self.start + len(s))

    @property
    def end(self) -> int:
        """One past the absolute index of the last sample."""
        return self._end

    def __len__(self) -> int:
        return len(self.samples)
