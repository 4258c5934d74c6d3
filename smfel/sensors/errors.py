"""Exceptions of the sensors package; each carries its context as attributes.

The sensors package sits below the agent in the dependency order, so it has its own small tree
rooted in :class:`SensorError` (a ``ValueError`` for bad input, an ``OSError`` for I/O).
"""

from __future__ import annotations

__all__ = ["RecordError", "SensorError", "SourceError"]


class SensorError(Exception):
    """Base class of every error the sensors package raises on purpose."""


class SourceError(SensorError, ValueError):
    """A source URL or one of its parameters is not usable; ``url`` and ``reason`` say why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class RecordError(SensorError, ValueError):
    """A WFDB record or annotation file could not be read; ``path`` and ``reason`` say why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
