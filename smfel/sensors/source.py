"""The common shape of every ECG source: a context manager that yields :class:`Chunk` objects.

Constructors only store parameters; :meth:`Source.open` does the I/O (reading a record, opening
a port) and :meth:`Source.close` releases it. Iterating an unopened source opens it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import TracebackType

from smfel.sensors.chunk import Chunk
from smfel.sensors.framing import SourceCounters
from smfel.sensors.resample import Resampler

__all__ = ["Pacer", "Resampled", "Source"]


class Source(ABC):
    """An iterator of chunks with counters of what it saw; use it as a context manager."""

    fs: float
    url: str

    def __init__(self, url: str, fs: float) -> None:
        self.url = url
        self.fs = fs
        self.counters = SourceCounters()
        self._opened = False
        self._closed = False

    def open(self) -> None:
        self._opened = True

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    @abstractmethod
    def _chunks(self) -> Iterator[Chunk]: ...

    def __iter__(self) -> Iterator[Chunk]:
        if not self._opened:
            self.open()
        return self._chunks()

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, fs={self.fs})"


class Resampled(Source):
    """A source resampled to ``fs`` (streaming, chunk-invariant) when its own rate differs;
    counters are the inner source's."""

    def __init__(self, inner: Source, fs: float) -> None:
        super().__init__(inner.url, fs)
        self.inner = inner
        self.counters = inner.counters
        self._resampler: Resampler | None = None

    def open(self) -> None:
        self.inner.open()
        if abs(self.inner.fs - self.fs) > 1e-9 * self.fs:
            self._resampler = Resampler(self.inner.fs, self.fs)
            self.fs = self._resampler.fs_out
        super().open()

    def close(self) -> None:
        self.inner.close()
        super().close()

    def _chunks(self) -> Iterator[Chunk]:
        for chunk in self.inner:
            if self._resampler is None:
                yield chunk
                continue
            out = self._resampler.push(chunk)
            if len(out):
                yield out


class Pacer:
    """Sleeps so that sample ``n`` is released at ``start + n / (fs * speed)`` (speed 0: never)."""

    def __init__(self, fs: float, speed: float) -> None:
        self.fs = fs
        self.speed = speed
        self.wall0 = time.time()
        self._mono0 = time.monotonic()

    def wait_until(self, n_samples: int) -> None:
        if self.speed <= 0:
            return
        due = self._mono0 + n_samples / (self.fs * self.speed)
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
