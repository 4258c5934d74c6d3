"""Exceptions of the agent package; each carries its context as attributes."""

from __future__ import annotations

__all__ = ["LearnerError", "SmfelError", "StateFileError"]


class SmfelError(Exception):
    """Base class of every error smfel raises on purpose."""


class LearnerError(SmfelError, ValueError):
    """A learner was given input of the wrong shape, class or value."""


class StateFileError(SmfelError):
    """A saved state file could not be used; ``path`` and ``reason`` say why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
