"""The state of one federated round: what was accepted, what was refused, when it closes.

A round opens with a deadline. It closes when the deadline has passed and the quorum is met, or
earlier when every active node has been accepted (nothing more can arrive). A round whose
deadline passes without quorum closes without a new global model (the strategy's ``None``), so
the last good model stays in force and the ledger still records what happened.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from smfel.aggregator.strategies import AcceptedUpdate, GlobalState

__all__ = ["OpenRound", "RoundResult"]


@dataclass(slots=True)
class OpenRound:
    """Mutable bookkeeping of the round being collected (owned by the service's worker)."""

    number: int
    opened_at: float
    deadline: float
    quorum: int
    accepted: dict[str, AcceptedUpdate] = field(default_factory=dict)
    rejected: list[tuple[str, str | None, str]] = field(default_factory=list)

    def accept(self, update: AcceptedUpdate) -> None:
        self.accepted[update.node_id] = update

    def reject(self, node: str, update_hash: str | None, reason: str) -> None:
        self.rejected.append((node, update_hash, reason))

    def should_close(self, now: float, active_nodes: Collection[str], early: bool) -> bool:
        if now >= self.deadline:
            return True
        if early and active_nodes and set(active_nodes) <= self.accepted.keys():
            return len(self.accepted) >= self.quorum
        return False


@dataclass(frozen=True, slots=True)
class RoundResult:
    """What a closed round produced (the service hands it to ``on_round`` observers)."""

    round: int
    strategy: str
    accepted: tuple[tuple[str, str, float], ...]
    rejected: tuple[tuple[str, str | None, str], ...]
    state: GlobalState | None
    global_hash: str | None
    seconds: float
