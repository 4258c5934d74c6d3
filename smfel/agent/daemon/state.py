"""The agent's observable state: counters others read while the service runs.

One object per agent, written by the worker thread and read by anyone (the fleet simulation,
tests, the status file). Reads of single fields are atomic in CPython; :meth:`wait_for` lets a
reader block until a condition holds instead of polling.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["AgentState"]


@dataclass(slots=True)
class AgentState:
    """Counters and flags of a running agent (see :meth:`as_dict` for the status file)."""

    node_id: str = ""
    phase: str = "created"  # created, starting, waiting-for-model, running, stopping, stopped
    samples: int = 0
    chunks: int = 0
    beats: int = 0
    beats_learned: int = 0
    beats_labelled: int = 0
    bad_inputs: int = 0
    alerts: int = 0
    rounds_answered: int = 0
    last_answered_round: int = -1
    last_adopted_round: int = -1
    updates_published: int = 0
    globals_rejected: int = 0
    messages_rejected: int = 0
    checkpoints: int = 0
    model_hash: str = ""
    runtime: dict[str, Any] = field(default_factory=dict)
    source_exhausted: bool = False
    source_error: str = ""
    last_reject_reason: str = ""
    error: str = ""  # why run() ended with an exception
    last_sample_monotonic: float = 0.0
    started_at: float = field(default_factory=time.time)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def changed(self) -> None:
        """Wake the threads waiting in :meth:`wait_for`."""
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[AgentState], bool], timeout: float) -> bool:
        """Block until ``predicate(state)`` holds (True) or ``timeout`` seconds pass (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def samples_flowing(self, within: float) -> bool:
        """True when a sample arrived in the last ``within`` seconds."""
        return (
            self.last_sample_monotonic > 0
            and time.monotonic() - self.last_sample_monotonic <= within
        )

    def as_dict(self) -> dict[str, Any]:
        skip = ("_cond", "last_sample_monotonic")
        return {
            f.name: copy.copy(getattr(self, f.name)) for f in fields(self) if f.name not in skip
        }
