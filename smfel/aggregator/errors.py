"""Exceptions of the aggregation service; each carries its context as attributes."""

from __future__ import annotations

from smfel.agent.errors import SmfelError

__all__ = ["AggregatorConfigError", "AggregatorError", "RegistryError"]


class AggregatorError(SmfelError):
    """Base class of the aggregation side's errors."""


class RegistryError(AggregatorError, ValueError):
    """A registry change that cannot be made; ``node_id`` names the node concerned."""

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        super().__init__(message)
        self.node_id = node_id


class AggregatorConfigError(AggregatorError):
    """The service configuration is unusable; ``problems`` holds one line per bad key."""

    def __init__(self, problems: list[str], source: str = "<config>") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))
