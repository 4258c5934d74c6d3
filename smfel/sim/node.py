"""One simulated device: the agent's own pipeline and round logic, driven segment by segment.

Each node replays its ECG source as one continuous stream, cut by time into one segment per
round, through the agent's code: the streaming
beat extractor (:class:`smfel.sensors.beats.BeatExtractor`), the inference runtime of the signed
bundle (:func:`smfel.agent.runtime.open_runtime`), the RLS learner learning every labelled beat
one at a time, and the agent's :class:`~smfel.agent.daemon.federation.Federation` that answers a
verified round announcement with a signed update and adopts a verified global model. Messages
travel over a real broker. The node is driven step by step (learn a segment, then answer) so
that a run is reproducible: every round's update holds exactly that round's segment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from smfel.agent.bundle import ModelBundle
from smfel.agent.daemon.federation import Federation
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey
from smfel.agent.learner import OSELM
from smfel.agent.protocol import Rejected, parse_global, parse_round
from smfel.agent.runtime import Runtime, open_runtime
from smfel.agent.transport import MessageProperties, MqttConfig, MqttTransport
from smfel.sensors.beats import BeatExtractor
from smfel.sensors.sources import open_source

__all__ = ["CLASSES", "SimNode", "stream_beats"]

log = logging.getLogger(__name__)

CLASSES = ("N", "S", "V", "F")
_INDEX = {c: i for i, c in enumerate(CLASSES)}


def stream_beats(url: str) -> Iterator[tuple[float, NDArray[np.float64], str | None]]:
    """``(seconds from the start, features, label)`` of every beat of a source, as the agent's
    extractor sees them."""
    extractor: BeatExtractor | None = None
    t0 = 0.0
    with open_source(url) as source:
        for chunk in source:
            if extractor is None:
                extractor = BeatExtractor(chunk.fs)
                t0 = chunk.t0
            for beat in extractor.push(chunk):
                yield beat.time - t0, beat.features, beat.label
    if extractor is not None:
        for beat in extractor.flush():
            yield beat.time - t0, beat.features, beat.label


@dataclass(slots=True)
class SimNode:
    """A device replaying ``url``; before round ``r + 1`` it learns the beats whose time lies in
    ``[edges[r], edges[r + 1])`` (the last round also takes whatever follows)."""

    node_id: str
    key: Ed25519PrivateKey
    url: str
    edges: tuple[float, ...]
    bundle: ModelBundle
    issuer: Ed25519PublicKey
    C: float
    class_weight: tuple[float, ...]
    min_beats: int
    topic_prefix: str = "smfel/v1"
    learned_features: list[NDArray[np.float64]] = field(default_factory=list)
    learned_y: list[int] = field(default_factory=list)
    updates_sent: int = 0
    globals_adopted: int = 0
    messages_refused: int = 0
    failed: str = ""
    _next_index: int = 0
    _runtime: Runtime | None = None
    _learner: OSELM | None = None
    _federation: Federation | None = None
    _mqtt: MqttTransport | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _beats: Iterator[tuple[float, NDArray[np.float64], str | None]] | None = None
    _ahead: tuple[float, NDArray[np.float64], str | None] | None = None
    adopted: threading.Event = field(default_factory=threading.Event)

    def start(self, host: str, port: int) -> SimNode:
        self._runtime = open_runtime(self.bundle)
        self._beats = stream_beats(self.url)
        self._learner = OSELM(
            self.bundle.hidden, CLASSES, C=self.C, class_weight=list(self.class_weight)
        )
        self._federation = Federation(
            self._learner,
            node_id=self.node_id,
            key=self.key,
            model_hash=self.bundle.model_hash,
            min_beats=self.min_beats,
        )
        mqtt = MqttTransport(
            MqttConfig(host, port, f"sim-{self.node_id}", clean_start=True, session_expiry=0)
        ).start()
        try:
            mqtt.wait_connected()
            for name, handler in (("fl/round", self._on_round), ("fl/global", self._on_global)):
                topic_filter = f"{self.topic_prefix}/{name}"
                mqtt.subscribe(topic_filter, handler)
                mqtt.wait_subscribed(topic_filter, 10.0)
        except Exception:
            mqtt.stop()
            raise
        self._mqtt = mqtt
        return self

    def stop(self) -> None:
        if self._mqtt is not None:
            self._mqtt.stop()
            self._mqtt = None
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    @property
    def learner(self) -> OSELM:
        assert self._learner is not None
        return self._learner

    def beats_pending(self) -> int:
        assert self._federation is not None
        return self._federation.beats_since_last_round()

    def _segment(self, index: int) -> Iterator[tuple[NDArray[np.float64], str | None]]:
        assert self._beats is not None
        last = index + 2 >= len(self.edges)
        end = self.edges[index + 1]
        while True:
            item = self._ahead if self._ahead is not None else next(self._beats, None)
            self._ahead = None
            if item is None:
                return
            if not last and item[0] >= end:
                self._ahead = item
                return
            yield item[1], item[2]

    def begin_segment(self, index: int) -> None:
        self._next_index = index

    def finish_segment(self) -> int:
        return self.learn_segment(self._next_index)

    def wait_adopted(self, round: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fed = self._federation
            if fed is not None and fed.adopted_round >= round:
                return True
            time.sleep(0.01)
        return False

    def learn_segment(self, index: int) -> int:
        """Replay segment ``index``: classify, then learn, every labelled beat (as the agent
        does); returns the number of beats learned."""
        if self.failed:
            return 0
        n = 0
        with self._lock:
            try:
                n = self._learn(index)
            except Exception as err:
                # A source or extractor failure ends this device's stream, not the run.
                self.failed = f"{type(err).__name__}: {err}"
                log.exception("%s: ECG stream failed in segment %d", self.node_id, index + 1)
        return n

    def _learn(self, index: int) -> int:
        assert self._runtime is not None and self._federation is not None
        n = 0
        learner, fed = self.learner, self._federation
        for features, label in self._segment(index):
            y = _INDEX.get(label) if label is not None else None
            if y is None:
                continue
            h = self._runtime.hidden_one(features)
            if learner.is_fitted:
                fed.score(int(np.argmax(h @ learner.beta_)) == y)
            learner.learn_hidden_one(h, y)
            self.learned_features.append(np.asarray(features, dtype=np.float64))
            self.learned_y.append(y)
            n += 1
        return n

    # -- messages (the transport's dispatcher thread) ----------------------------------------
    def _on_round(self, topic: str, payload: bytes, props: MessageProperties) -> None:
        assert self._federation is not None and self._mqtt is not None
        try:
            ann = parse_round(payload, public_key=self.issuer)
        except Rejected as err:
            self.messages_refused += 1
            log.warning("%s: round announcement refused: %s", self.node_id, err)
            return
        with self._lock:
            self._federation.announce(ann)
            update = self._federation.answer()
        if update is not None:
            self._mqtt.publish(
                f"{self.topic_prefix}/fl/updates/{self.node_id}", update.to_bytes(), timeout=10.0
            )
            self.updates_sent += 1

    def _on_global(self, topic: str, payload: bytes, props: MessageProperties) -> None:
        assert self._federation is not None
        try:
            gm = parse_global(payload, public_key=self.issuer)
        except Rejected as err:
            self.messages_refused += 1
            log.warning("%s: global model refused: %s", self.node_id, err)
            return
        with self._lock:
            outcome = self._federation.adopt(gm)
        if outcome.accepted:
            self.globals_adopted += 1
            self.adopted.set()
