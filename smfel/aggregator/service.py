"""The aggregation service: announce rounds, verify updates, aggregate, publish, record.

One worker thread owns the round state. MQTT messages (from an MQTT 5 shared subscription,
``$share/GROUP/PREFIX/fl/updates/+``, so several workers can split the load) are queued by the
transport's dispatcher and verified by the worker through
:class:`~smfel.aggregator.pipeline.Verifier`. The connection is the agent's own transport
(:class:`~smfel.agent.transport.MqttTransport`: QoS 1, PUBACK awaited, reconnects with backoff).
A shared subscription gets neither retained messages nor anything published before it exists
(MQTT 5, section 4.8.2), so no round is announced before the broker acknowledged it (SUBACK).
Every refusal is kept with its typed reason and written to the ledger with the round's block; an
exception in one update is logged and recorded, never fatal. When a round closes the strategy
aggregates, the signed global model is published retained on ``fl/global``, the ledger block is
appended, the signed checkpoint is published retained on ``ledger/checkpoint``, and the next
round is announced retained on ``fl/round``.

Embeddable: ``Aggregator(config, signing_key=...).start()`` / ``.stop()``, observers via
``on_round``; the simulation runs it in-process next to the agents.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from smfel.agent.bundle import load_bundle
from smfel.agent.keys import Ed25519PrivateKey, key_id
from smfel.agent.protocol import GlobalModel, LedgerCheckpoint, RoundAnnouncement
from smfel.agent.transport import (
    MessageProperties,
    MqttConfig,
    MqttTransport,
    TlsConfig,
    TransportError,
)
from smfel.aggregator.config import AggregatorConfig, MqttSection
from smfel.aggregator.ledger import Ledger
from smfel.aggregator.pipeline import Limits, Rejected, Verifier, VerifierBatch
from smfel.aggregator.registry import KeyEvent, Registry
from smfel.aggregator.rounds import OpenRound, RoundResult
from smfel.aggregator.strategies import GlobalState, Strategy, make_strategy

__all__ = ["Aggregator", "key_event_recorder"]

log = logging.getLogger(__name__)

#: Seconds to wait for the broker's PUBACK of an announcement, model or checkpoint, and for
#: the SUBACK of the update subscription.
ACK_TIMEOUT = 10.0
#: Updates verified with one registry snapshot and one clock reading, at most (a batch takes
#: what is queued already, so a quiet service verifies one at a time).
BATCH = 64
#: Where TLS without a ``ca_file`` finds the system's certificate authorities (Debian).
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"


def transport_config(m: MqttSection) -> MqttConfig:
    """The transport settings of the ``[mqtt]`` section. A configured ``client_id`` gets a
    persistent session, so updates published while the service restarts wait for it in the
    broker; without one a random id with a clean session leaves nothing behind."""
    password = Path(m.password_file).read_text().strip() if m.password_file else None
    tls = None
    if m.tls or m.ca_file or m.cert_file:
        tls = TlsConfig(
            ca=Path(m.ca_file or SYSTEM_CA),
            cert=Path(m.cert_file) if m.cert_file else None,
            key=Path(m.key_file) if m.key_file else None,
        )
    persistent = bool(m.client_id)
    return MqttConfig(
        host=m.host,
        port=m.port,
        client_id=m.client_id or f"smfel-aggregator-{secrets.token_hex(6)}",
        username=m.username or None,
        password=password if m.username else None,
        tls=tls,
        clean_start=not persistent,
        session_expiry=7 * 24 * 3600 if persistent else 0,
        backoff_min=0.5,
        backoff_max=30.0,
    )


def key_event_recorder(ledger: Ledger) -> Callable[[KeyEvent], None]:
    """The registry's ``on_event`` that appends each key event to ``ledger``."""

    def record(event: KeyEvent) -> None:
        ledger.append_key_event(
            event.event,
            event.node_id,
            event.key_id,
            previous_key_id=event.previous_key_id,
            reason=event.reason or None,
        )

    return record


def _prefixed(h: str) -> str:
    return h if h.startswith("sha256:") else "sha256:" + h


class Aggregator:
    """The service. Constructing it does no I/O; :meth:`start` opens everything."""

    def __init__(
        self,
        config: AggregatorConfig,
        *,
        signing_key: Ed25519PrivateKey,
        on_round: Callable[[RoundResult], None] | None = None,
        clock: Callable[[], float] = time.time,
        manual_rounds: bool = False,
    ) -> None:
        self.config = config
        self.manual_rounds = manual_rounds
        self.signing_key = signing_key
        self.on_round = on_round
        self.clock = clock
        self.strategy: Strategy = make_strategy(
            config.rounds.strategy,
            C=config.model.C,
            min_updates=config.rounds.quorum,
            seed=config.rounds.seed,
        )
        self.results: list[RoundResult] = []
        self.global_state: GlobalState | None = None
        self.errors = 0
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._expect: frozenset[str] | None = None
        self._next_round = 1
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._round: OpenRound | None = None
        self.ledger: Ledger | None = None
        self.registry: Registry | None = None
        self.mqtt: MqttTransport | None = None
        self.model_hash = ""

    # -- topics ------------------------------------------------------------------------------
    def topic(self, name: str) -> str:
        return f"{self.config.mqtt.topic_prefix}/{name}"

    @property
    def updates_filter(self) -> str:
        """The shared subscription the workers of ``share_group`` split the updates over."""
        return f"$share/{self.config.mqtt.share_group}/{self.topic('fl/updates/+')}"

    @property
    def current_round(self) -> int | None:
        r = self._round
        return r.number if r is not None else None

    @property
    def finished(self) -> threading.Event:
        """Set when ``max_rounds`` rounds have closed."""
        return self._done

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Aggregator:
        cfg = self.config
        Path(cfg.service.state_dir).mkdir(parents=True, exist_ok=True)
        bundle = load_bundle(
            cfg.model.bundle, trusted_keys={key_id(self.signing_key): self.signing_key.public_key()}
        )
        self.model_hash = bundle.model_hash
        self.ledger = Ledger.open(cfg.service.ledger_url(), signing_keys=[self.signing_key])
        self.registry = Registry(
            cfg.service.path(cfg.service.registry), on_event=key_event_recorder(self.ledger)
        ).open()
        limits = Limits(
            n_hidden=bundle.hidden.n_hidden,
            classes=cfg.model.classes,
            class_weight=cfg.model.weights(),
            activation=bundle.hidden.activation,
            model_hash=bundle.model_hash,
            min_beats=cfg.rounds.min_beats,
            max_payload=cfg.rounds.max_payload,
            max_clock_skew=cfg.rounds.max_clock_skew,
            max_age=cfg.rounds.max_age,
        )
        self.verifier = Verifier(self.registry, limits, self.strategy.kind, clock=self.clock)
        self.mqtt = MqttTransport(transport_config(cfg.mqtt)).start()
        try:
            self.mqtt.wait_connected()
            self.mqtt.subscribe(self.updates_filter, self._on_update, timeout=ACK_TIMEOUT)
            self.mqtt.wait_subscribed(self.updates_filter, ACK_TIMEOUT)
        except Exception:
            self.mqtt.stop()
            self.mqtt = None
            raise
        self._stop.clear()
        self._next_round = self._first_round()
        if not self.manual_rounds:
            self._open_round(self._next_round)
        self._thread = threading.Thread(target=self._work, name="aggregator-worker", daemon=True)
        self._thread.start()
        log.info("aggregator serving strategy %s, model %s", self.strategy.name, self.model_hash)
        return self

    def _first_round(self) -> int:
        assert self.ledger is not None
        rounds = [b.header.round for b in self.ledger.blocks() if b.header.kind == "round"]
        return max((r for r in rounds if r is not None), default=0) + 1

    def announce_next(self, expect: Collection[str] | None = None) -> None:
        """Open the next round now (``manual_rounds``); it closes early once every node in
        ``expect`` (default: every active node) was accepted or refused."""
        self._queue.put(("open", None if expect is None else frozenset(expect)))

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.registry is not None:
            self.registry.close()
        if self.ledger is not None:
            self.ledger.close()

    def __enter__(self) -> Aggregator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_update(self, topic: str, payload: bytes, props: MessageProperties) -> None:
        # The transport's dispatcher: only queue, the worker owns the round state.
        self._queue.put((topic, payload))

    # -- the worker --------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            r = self._round
            timeout = 0.05 if r is None else max(0.0, min(0.2, r.deadline - self.clock()))
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            # What else is queued already is taken in the same batch: the updates share one
            # registry snapshot and one clock reading (``Verifier.batch``), each still checked
            # on its own and in arrival order.
            batch: VerifierBatch | None = None
            for _ in range(BATCH):
                if item is None:
                    self._step(None, None)
                    break
                if item[0] != "open" and batch is None:
                    batch = self._new_batch()
                self._step(item, batch)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            else:
                self._step(item, batch)

    def _new_batch(self) -> VerifierBatch | None:
        """A batch for the updates being taken off the queue; ``None`` (each update then reads
        the registry itself, and fails on its own) if the registry cannot be read now."""
        try:
            return self.verifier.batch()
        except Exception:
            self.errors += 1
            log.exception("aggregator: no registry snapshot for a batch (verifying one by one)")
            return None

    def _step(self, item: tuple[str, Any] | None, batch: VerifierBatch | None) -> None:
        """One queued item (``None``: nothing arrived), then the round's closing check."""
        try:
            if item is not None and item[0] == "open":
                if self._round is None:
                    self._expect = item[1]
                    self._open_round(self._next_round)
            elif item is not None:
                self._handle(item[0], item[1], batch)
            self._maybe_close()
        except Exception:
            # One bad update or one failed publish never stops the service.
            self.errors += 1
            log.exception("aggregator worker error (continuing)")

    def _handle(self, topic: str, payload: bytes, batch: VerifierBatch | None = None) -> None:
        r = self._round
        if r is None:
            return
        topic_node = topic.rsplit("/", 1)[-1]
        verifier = batch if batch is not None else self.verifier
        try:
            upd = verifier.verify(payload, round=r.number, already=r.accepted.keys())
        except Rejected as rej:
            node = rej.node_id or topic_node
            log.info("round %d: rejected update from %s: %s", r.number, node, rej)
            r.reject(node, rej.update_hash, rej.reason.value)
            return
        if upd.node_id != topic_node:
            r.reject(upd.node_id, upd.update_hash, "bad_topic")
            return
        r.accept(upd)
        log.debug("round %d: accepted %s (%d beats)", r.number, upd.node_id, upd.n_samples)

    def _active_nodes(self) -> list[str]:
        assert self.registry is not None
        return [n.node_id for n in self.registry.nodes() if n.status == "active"]

    def _maybe_close(self) -> None:
        r = self._round
        if r is None:
            return
        early = self.config.rounds.close_when_all_reported
        if self._expect is not None:
            heard = set(r.accepted) | {node for node, _, _ in r.rejected}
            done = self._expect <= heard
        else:
            # The active nodes (a registry query) matter only once an early close could happen.
            could = early and len(r.accepted) >= r.quorum
            done = r.should_close(self.clock(), self._active_nodes() if could else (), early)
        if not (done or self.clock() >= r.deadline):
            return
        self._round = None
        self._expect = None
        try:
            self._close(r)
        except Exception:
            # A failed publish or ledger write must not stall the rounds that follow.
            self.errors += 1
            log.exception("closing round %d failed (continuing with the next round)", r.number)
        self._next_round = r.number + 1
        limit = self.config.rounds.max_rounds
        if limit and r.number >= limit:
            self._done.set()
        elif not self.manual_rounds:
            self._open_round(self._next_round)

    def _close(self, r: OpenRound) -> None:
        assert self.ledger is not None and self.mqtt is not None
        updates = list(r.accepted.values())
        state = self.strategy.aggregate(updates, self.global_state)
        global_hash = None
        if state is not None:
            arrays: dict[str, NDArray[Any]] = {"beta": state.beta}
            if state.U is not None and state.V is not None and state.class_counts is not None:
                arrays.update(U=state.U, V=state.V, class_counts=state.class_counts)
            head = self.ledger.checkpoint()
            env = GlobalModel.create(
                self.signing_key,
                round=r.number,
                model_hash=self.model_hash,
                strategy=self.strategy.name,
                arrays=arrays,
                n_samples=state.n_samples,
                contributors=[u.node_id for u in updates],
                ledger_height=head.height + 1,
            )
            global_hash = env.weights_hash
            self.global_state = state
            self.mqtt.publish(
                self.topic("fl/global"), env.to_bytes(), retain=True, timeout=ACK_TIMEOUT
            )
        weights = state.weights if state is not None else {}
        accepted = tuple(
            (u.node_id, u.update_hash, float(weights.get(u.node_id, 0.0)))
            for u in sorted(updates, key=lambda u: u.node_id)
        )
        self.ledger.append_round(
            r.number,
            self.strategy.name,
            accepted=accepted,
            rejected=r.rejected,
            reputation=dict(state.reputation) if state is not None else None,
            global_model_hash=global_hash,
        )
        cp = self.ledger.checkpoint()
        signed = LedgerCheckpoint.create(
            self.signing_key,
            height=cp.height,
            head_hash=_prefixed(cp.head_hash),
            merkle_root=_prefixed(cp.merkle_root),
            tree_size=cp.tree_size,
        )
        self.mqtt.publish(
            self.topic("ledger/checkpoint"), signed.to_bytes(), retain=True, timeout=ACK_TIMEOUT
        )
        result = RoundResult(
            round=r.number,
            strategy=self.strategy.name,
            accepted=accepted,
            rejected=tuple(r.rejected),
            state=state,
            global_hash=global_hash,
            seconds=self.clock() - r.opened_at,
        )
        self.results.append(result)
        log.info(
            "round %d closed: %d accepted, %d rejected%s",
            r.number,
            len(accepted),
            len(r.rejected),
            "" if state is not None else " (no quorum: global model kept)",
        )
        if self.on_round is not None:
            try:
                self.on_round(result)
            except Exception:
                log.exception("on_round observer failed")

    def _open_round(self, number: int) -> None:
        assert self.mqtt is not None
        try:
            # After a reconnect with a fresh session the subscription is being renewed: an
            # update answering this announcement must find it in place.
            self.mqtt.wait_subscribed(self.updates_filter, ACK_TIMEOUT)
        except TransportError as err:
            log.warning("round %d: announcing without a confirmed subscription: %s", number, err)
        now = self.clock()
        cfg = self.config
        deadline = now + cfg.rounds.duration
        self._round = OpenRound(number, now, deadline, cfg.rounds.quorum)
        env = RoundAnnouncement.create(
            self.signing_key,
            round=number,
            model_hash=self.model_hash,
            strategy=self.strategy.name,
            kind=self.strategy.kind,
            deadline=dt.datetime.fromtimestamp(deadline, dt.UTC),
            C=cfg.model.C,
            class_weight=cfg.model.weights(),
            min_beats=cfg.rounds.min_beats,
        )
        self.mqtt.publish(self.topic("fl/round"), env.to_bytes(), retain=True, timeout=ACK_TIMEOUT)
        log.info("round %d announced (deadline in %.1f s)", number, cfg.rounds.duration)
