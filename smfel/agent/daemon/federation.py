"""The device's side of a federated round: when to answer, what to send, what to adopt.

* An announced round (signed by a trusted aggregator key, for the model this device runs) is
  answered once, with the kind it asks for: ``stats`` sends the sufficient statistics learned
  since the last answered round (the difference of two snapshots, so every beat is counted in
  exactly one round), ``beta`` the local output weights. A round is never answered from fewer
  than ``min_beats`` beats (DESIGN.md, "Privacy": an update of one beat reveals that beat); the
  round stays pending until enough beats were learned or its deadline passed.
* A global model is adopted only when it verifies, is for this device's model and is newer than
  the last one adopted; the last good model is kept otherwise. With pooled statistics (the
  ``exact`` strategy) the learner takes them and re-adds the beats it learned since its update,
  so learning goes on as if this device had seen every beat of the federation.

Pure logic over the learner and the envelopes: no MQTT, no files (the service persists it).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from smfel.agent.keys import Ed25519PrivateKey
from smfel.agent.learner import OSELM, SufficientStatistics
from smfel.agent.protocol import GlobalModel, RoundAnnouncement, Update

__all__ = ["Federation", "Outcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What handling a message did: ``accepted`` and a short ``reason`` for logs and status."""

    accepted: bool
    reason: str


class Federation:
    """Round bookkeeping for one learner; the service calls it from its worker thread only."""

    def __init__(
        self,
        learner: OSELM,
        *,
        node_id: str,
        key: Ed25519PrivateKey,
        model_hash: str,
        min_beats: int,
        snapshot: SufficientStatistics | None = None,
        answered_round: int = -1,
        adopted_round: int = -1,
    ) -> None:
        self.learner = learner
        self.node_id = node_id
        self.key = key
        self.model_hash = model_hash
        self.min_beats = min_beats
        self.snapshot = snapshot
        self.answered_round = answered_round
        self.adopted_round = adopted_round
        self.pending: RoundAnnouncement | None = None
        self.correct = 0
        self.scored = 0
        self.skipped_too_few = 0

    # -- bookkeeping ---------------------------------------------------------------------
    def _base(self) -> SufficientStatistics:
        if self.snapshot is not None:
            return self.snapshot
        return SufficientStatistics.zeros(self.learner.n_hidden, self.learner.n_classes)

    def since_last_round(self) -> SufficientStatistics:
        """Statistics of the beats learned since the last answered round."""
        return self.learner.statistics() - self._base()

    def beats_since_last_round(self) -> int:
        return int(self.learner.n_seen_) - self._base().n if self.learner.is_fitted else 0

    def score(self, correct: bool) -> None:
        """Count one labelled beat predicted before it was learned (prequential accuracy)."""
        self.correct += int(correct)
        self.scored += 1

    def local_accuracy(self) -> float:
        return self.correct / self.scored if self.scored else 0.0

    def meta(self) -> dict[str, Any]:
        return {
            "answered_round": self.answered_round,
            "adopted_round": self.adopted_round,
            "model_hash": self.model_hash,
            "correct": self.correct,
            "scored": self.scored,
        }

    # -- rounds --------------------------------------------------------------------------
    def announce(self, ann: RoundAnnouncement) -> Outcome:
        """Take a verified announcement; answering happens in :meth:`answer`."""
        if ann.model_hash != self.model_hash:
            return Outcome(False, f"round {ann.round} is for model {ann.model_hash}, not ours")
        if ann.round <= self.answered_round:
            return Outcome(
                False, f"round {ann.round} already answered (last {self.answered_round})"
            )
        if self.pending is not None and self.pending.round > ann.round:
            return Outcome(False, f"round {ann.round} is older than pending {self.pending.round}")
        self.pending = ann
        return Outcome(True, f"round {ann.round} pending ({ann.kind})")

    def answer(self, now: dt.datetime | None = None) -> Update | None:
        """The update for the pending round when it can be sent now, else None."""
        ann = self.pending
        if ann is None:
            return None
        when = now or dt.datetime.now(dt.UTC)
        if ann.deadline_time < when:
            log.info(
                "round %d: deadline passed before %d beats were learned", ann.round, self.min_beats
            )
            self.pending = None
            return None
        need = max(self.min_beats, ann.min_beats)
        delta = self.since_last_round() if self.learner.is_fitted else None
        if delta is None or delta.n < need:
            return None
        accuracy = self.local_accuracy()
        if ann.kind == "stats":
            update = Update.from_statistics(
                self.key,
                delta,
                node_id=self.node_id,
                round=ann.round,
                model_hash=self.model_hash,
                local_accuracy=accuracy,
            )
        else:
            update = Update.create(
                self.key,
                node_id=self.node_id,
                round=ann.round,
                kind="beta",
                arrays={
                    "beta": np.array(self.learner.beta_, dtype=np.float64, order="C"),
                    "class_counts": delta.class_counts.astype(np.int64),
                },
                n_samples=int(delta.n),
                local_accuracy=accuracy,
                model_hash=self.model_hash,
            )
        # Everything learned so far is now in an update: the next one starts from here.
        self.snapshot = self.learner.statistics()
        self.answered_round = ann.round
        self.pending = None
        self.correct = self.scored = 0
        return update

    # -- global models -------------------------------------------------------------------
    def adopt(self, gm: GlobalModel) -> Outcome:
        """Adopt a verified global model unless it is older or for another model."""
        if gm.model_hash != self.model_hash:
            return Outcome(False, f"global model of round {gm.round} is for another model")
        if gm.round <= self.adopted_round:
            return Outcome(
                False, f"global model of round {gm.round} is not newer than {self.adopted_round}"
            )
        learner = self.learner
        L, K = learner.n_hidden, learner.n_classes
        beta = gm.beta
        if beta.shape != (L, K) or not np.isfinite(beta).all():
            return Outcome(False, f"global beta has shape {beta.shape}, this model needs {(L, K)}")
        pooled = gm.statistics()
        if pooled is not None:
            if pooled.U.shape != (L, L) or pooled.V.shape != (L, K):
                return Outcome(False, "global statistics do not fit this model")
            # Beats learned after our update are not in the pool yet: add them back.
            since = self.since_last_round() if learner.is_fitted else None
            total = pooled + since if since is not None else pooled
            learner.adopt(beta, statistics=total)
            if since is not None and since.n:
                learner.resolve()
            self.snapshot = pooled
        else:
            learner.adopt(beta)
        self.adopted_round = gm.round
        return Outcome(True, f"adopted the global model of round {gm.round} ({gm.strategy})")
