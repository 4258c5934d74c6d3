"""The service loop of the agent (DESIGN.md, "Data flow on the device").

    source thread:  open_source(url) -> chunks -> bounded queue
    worker thread:  chunk -> BeatExtractor -> runtime.hidden_one -> scores = h @ beta -> class
                    -> alerts, telemetry -> learn labelled beats -> answer the pending round
                    -> adopt verified global models -> checkpoint every N beats
    MQTT thread:    messages -> control queue (handled by the worker, so only the worker ever
                    touches the learner)
    watchdog:       WATCHDOG=1 every WATCHDOG_USEC/2 while samples flow

An :class:`Agent` is embeddable: the fleet simulation runs many in one process, each with its
config built in code, keys and bundle passed in memory, and reads :attr:`Agent.state`. The
command line (``smfel-agent run``) adds signal handling and sd_notify around the same object.
Nothing in the loop is fatal for one bad frame, beat or message: it is counted and logged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from smfel.agent.bundle import BundleError, ModelBundle, bundle_from_bytes, load_bundle
from smfel.agent.daemon import links
from smfel.agent.daemon.alerts import AlertEngine
from smfel.agent.daemon.blas import limit_blas_threads
from smfel.agent.daemon.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from smfel.agent.daemon.config import AgentConfig, ConfigError, load_config
from smfel.agent.daemon.federation import Federation
from smfel.agent.daemon.hass import discovery_messages
from smfel.agent.daemon.keyfiles import load_trusted_keys
from smfel.agent.daemon.sdnotify import Notifier, Watchdog, watchdog_interval
from smfel.agent.daemon.state import AgentState
from smfel.agent.daemon.telemetry import TelemetryWindow, utc_now
from smfel.agent.errors import SmfelError, StateFileError
from smfel.agent.keys import Ed25519PrivateKey, Ed25519PublicKey
from smfel.agent.keystore import KeyStore
from smfel.agent.learner import OSELM
from smfel.agent.model_defaults import DEFAULT_C, DEFAULT_CLASSES
from smfel.agent.protocol import RoundAnnouncement, Update
from smfel.agent.runtime import DelegateSpec, Runtime, open_runtime
from smfel.agent.state import atomic_write
from smfel.sensors.beats import Beat, BeatExtractor
from smfel.sensors.chunk import Chunk
from smfel.sensors.sources import open_source

__all__ = ["Agent"]

log = logging.getLogger(__name__)

CLASSES = DEFAULT_CLASSES
STATUS_FILE = "status.json"
BUNDLE_DIR = "bundle"
_CHUNK_QUEUE = 64
_FEEDBACK_BEATS = 256

Callback = Callable[["Agent"], None]
UpdateCallback = Callable[["Agent", Update], None]


class Agent:
    """One edge agent. ``start()``/``stop()`` run it in named threads; ``run(stop)`` blocks.

    Keys and the bundle may be given in memory (``node_key``, ``trusted_keys``, ``bundle``);
    otherwise they come from the files the config names. ``on_update`` is called after each
    update was handed to the outbox, ``on_exhausted`` when the source ended.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        node_key: Ed25519PrivateKey | None = None,
        trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
        bundle: ModelBundle | None = None,
        on_update: UpdateCallback | None = None,
        on_exhausted: Callback | None = None,
        notifier: Notifier | None = None,
        config_path: str | None = None,
    ) -> None:
        self.config = config.validate()
        self.config_path = config_path
        self.state = AgentState(node_id=config.node.id)
        self.exhausted = threading.Event()
        self._node_key = node_key
        self._trusted = dict(trusted_keys) if trusted_keys is not None else None
        self._bundle = bundle
        self._on_update = on_update
        self._on_exhausted = on_exhausted
        self.notifier = notifier or Notifier("")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._chunks: queue.Queue[Any] = queue.Queue(_CHUNK_QUEUE)
        self._control: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._source: Any = None
        self._source_thread: threading.Thread | None = None
        self._link: links.Link | None = None
        self._watchdog: Watchdog | None = None
        self.runtime: Runtime | None = None
        self.learner: OSELM | None = None
        self.federation: Federation | None = None
        self._extractor: BeatExtractor | None = None
        self._offset = 0  # absolute index of the extractor's sample 0
        self._expected = 0  # absolute index the next chunk should start at
        self._beta: NDArray[np.float64] | None = None
        self._since_checkpoint = 0
        # (sample index, beat time, h) of the last beats, for label feedback.
        self._recent: deque[tuple[int, float, NDArray[np.float64]]] = deque(maxlen=_FEEDBACK_BEATS)
        self.alerts = AlertEngine(config.alerts)
        self.telemetry = TelemetryWindow(config.node.id)
        self._next_telemetry = 0.0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> Agent:
        """Run the agent in a thread named ``smfel-agent-<node>``; returns at once."""
        if self._thread is not None:
            raise SmfelError("agent already started")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name=f"smfel-agent-{self.config.node.id}"
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the agent started with :meth:`start`: final checkpoint, offline status."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def request_reload(self, config: AgentConfig | None = None) -> None:
        """Re-read the config file (SIGHUP) or take ``config``; applied by the worker."""
        self._control.put(("reload", config))

    @property
    def paths(self) -> dict[str, Path]:
        s = self.config.state
        return {
            "checkpoint": s.path(CHECKPOINT_FILE),
            "status": s.path(STATUS_FILE),
            "outbox": s.path("outbox.sqlite"),
            "bundle": s.path(BUNDLE_DIR),
            "global": s.path("global.json"),
        }

    def run(self, stop: threading.Event | None = None) -> None:
        """Run until ``stop`` is set (blocking); every resource is released on the way out."""
        stop = stop if stop is not None else self._stop
        self.state.phase = "starting"
        try:
            self._setup()
            self.notifier.ready(self._status_line())
            self._start_watchdog()
            while not stop.is_set():
                self._drain_control()
                self._step(0.1)
                self._periodic()
                # Wake readers blocked in AgentState.wait_for (the fleet simulation, tests).
                self.state.changed()
        except BaseException as err:
            self.state.error = f"{type(err).__name__}: {err}"
            log.error("agent %s stopped: %s", self.config.node.id, self.state.error)
            raise
        finally:
            self.state.phase = "stopping"
            self.notifier.stopping()
            self._shutdown()
            self.state.phase = "stopped"
            self._write_status()
            self.state.changed()

    # -- setup / shutdown ----------------------------------------------------------------
    def _setup(self) -> None:
        cfg = self.config
        limit_blas_threads(1)
        Path(cfg.state.directory).mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._node_key is None:
            self._node_key = KeyStore(cfg.state.directory).load_or_create()
        if self._trusted is None:
            self._trusted = load_trusted_keys(cfg.model.trusted_keys)
        bundle = self._bundle or self._initial_bundle()
        if bundle is not None:
            self._install_bundle(bundle)
        else:
            self.state.phase = "waiting-for-model"
            log.warning("no model bundle yet: classifying nothing until one arrives")
        if cfg.mqtt.enabled:
            self._link = links.open_link(
                cfg, self.paths["outbox"], birth=self._birth(), on_message=self._enqueue
            )
            self._link.subscribe_control(bundle_topic=cfg.model.bundle_topic)
            if cfg.telemetry.home_assistant:
                self._publish_discovery()
        self._start_source()
        self._next_telemetry = time.monotonic() + cfg.telemetry.interval

    def _start_watchdog(self) -> None:
        interval = watchdog_interval()
        if interval is not None and self.notifier.enabled:
            # Read at each ping, so a reload's new stall_seconds applies at once.
            self._watchdog = Watchdog(
                self.notifier,
                interval,
                lambda: self.state.samples_flowing(self.config.watchdog.stall_seconds),
            )
            self._watchdog.start()

    def _shutdown(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
        self._stop_source()
        if self.learner is not None:
            with contextlib.suppress(OSError, SmfelError):
                self._checkpoint()
        if self._link is not None:
            self._link.close()
            self._link = None
        if self.runtime is not None:
            self.runtime.close()

    # -- model ---------------------------------------------------------------------------
    def _initial_bundle(self) -> ModelBundle | None:
        """The newest verified bundle of the configured one and one received earlier."""
        assert self._trusted is not None
        found: list[ModelBundle] = []
        for where in (self.config.model.bundle, str(self.paths["bundle"])):
            if not where or not (Path(where) / "manifest.json").exists():
                continue
            try:
                found.append(load_bundle(where, self._trusted))
            except BundleError as err:
                log.error("model bundle refused: %s", err)
        if not found:
            return None
        return max(found, key=lambda b: b.manifest.created)

    def _install_bundle(self, bundle: ModelBundle) -> None:
        cfg = self.config
        delegate = None
        if cfg.runtime.delegate:
            opts = {k: str(v) for k, v in cfg.runtime.delegate_options.items()}
            delegate = DelegateSpec(cfg.runtime.delegate, opts)
        variant = cfg.model.variant
        if variant not in bundle.manifest.variants:
            log.warning("bundle has no %s model; using float32", variant)
            variant = "float32"
        runtime = open_runtime(
            bundle,
            variant=variant,
            delegate=delegate,
            num_threads=cfg.runtime.threads,
            prefer=backends(cfg.runtime.backend),
        )
        learner, ckpt = self._restore_learner(bundle)
        if self.runtime is not None:
            self.runtime.close()
        self._bundle, self.runtime, self.learner = bundle, runtime, learner
        assert self._node_key is not None
        meta = ckpt.meta if ckpt is not None else {}
        self.federation = Federation(
            learner,
            node_id=cfg.node.id,
            key=self._node_key,
            model_hash=bundle.model_hash,
            min_beats=cfg.learning.min_beats,
            snapshot=ckpt.snapshot if ckpt is not None else None,
            answered_round=int(meta.get("answered_round", -1)),
            adopted_round=int(meta.get("adopted_round", -1)),
        )
        self._beta = learner.beta_ if learner.is_fitted else None
        self.state.model_hash = bundle.model_hash
        self.state.runtime = runtime.status.as_dict()
        self.state.last_answered_round = self.federation.answered_round
        self.state.last_adopted_round = self.federation.adopted_round
        self.state.beats_learned = int(learner.n_seen_) if learner.is_fitted else 0
        self.state.phase = "running"
        self.state.changed()
        log.info("model %s on %s (%s)", bundle.model_hash[:19], runtime.status.backend, variant)

    def _new_learner(self, bundle: ModelBundle) -> OSELM:
        lc = self.config.learning
        return OSELM(
            bundle.hidden,
            CLASSES,
            C=lc.C if lc.C > 0 else DEFAULT_C,
            class_weight=list(lc.class_weight) if lc.class_weight else None,
        )

    def _restore_learner(self, bundle: ModelBundle) -> tuple[OSELM, Checkpoint | None]:
        path = self.paths["checkpoint"]
        if path.exists():
            try:
                ckpt = read_checkpoint(path)
            except StateFileError as err:
                log.error("checkpoint refused, starting a fresh learner: %s", err)
            else:
                if ckpt.meta.get("model_hash") == bundle.model_hash:
                    log.info("resuming from checkpoint: %d beats learned", ckpt.learner.n_seen_)
                    return ckpt.learner, ckpt
                log.warning("checkpoint is for another model; starting a fresh learner")
        return self._new_learner(bundle), None

    def _checkpoint(self) -> None:
        if self.learner is None or self.federation is None:
            return
        meta = {**self.federation.meta(), "beats": self.state.beats, "node_id": self.config.node.id}
        write_checkpoint(
            self.paths["checkpoint"], Checkpoint(self.learner, self.federation.snapshot, meta)
        )
        self._since_checkpoint = 0
        self.state.checkpoints += 1

    # -- source --------------------------------------------------------------------------
    def _start_source(self) -> None:
        self._extractor = None
        self._source = open_source(self.config.source.url)
        self._source_thread = threading.Thread(
            target=self._read_source, name=f"smfel-source-{self.config.node.id}", daemon=True
        )
        self._source_thread.start()

    def _read_source(self) -> None:
        try:
            for chunk in self._source:
                while True:
                    try:
                        self._chunks.put(chunk, timeout=0.2)
                        break
                    except queue.Full:
                        if self._stop.is_set() or self._source is None:
                            return
        except Exception as err:  # a source that dies must not take the agent with it
            if self._stop.is_set() or self._source is None:
                return  # closed under the reader by a stop or a reload: not a failure
            log.error("ECG source failed: %s", err)
            self.state.source_error = f"{type(err).__name__}: {err}"
        finally:
            with contextlib.suppress(queue.Full):
                self._chunks.put(None, timeout=5)

    def _stop_source(self) -> None:
        src, self._source = self._source, None
        if src is not None:
            with contextlib.suppress(Exception):
                src.close()
        if self._source_thread is not None:
            # Free a reader blocked on a full queue.
            with contextlib.suppress(queue.Empty):
                while True:
                    self._chunks.get_nowait()
            self._source_thread.join(timeout=5)
            self._source_thread = None

    # -- the loop ------------------------------------------------------------------------
    def _step(self, timeout: float) -> None:
        try:
            chunk = self._chunks.get(timeout=timeout)
        except queue.Empty:
            return
        if chunk is None:
            self._exhausted()
            return
        try:
            self._process_chunk(chunk)
        except Exception:  # one bad chunk is logged and counted, never fatal
            log.exception("chunk at sample %d dropped", getattr(chunk, "start", -1))
            self.state.bad_inputs += 1

    def _exhausted(self) -> None:
        if self._extractor is not None:
            with contextlib.suppress(Exception):
                self._handle_beats(self._extractor.flush())
        self.state.source_exhausted = True
        self.exhausted.set()
        log.info(
            "ECG source ended after %d samples, %d beats", self.state.samples, self.state.beats
        )
        self._try_answer()
        if self.learner is not None:
            self._checkpoint()
        self._write_status()
        self.state.changed()
        if self._on_exhausted is not None:
            self._on_exhausted(self)

    def _process_chunk(self, chunk: Chunk) -> None:
        st = self.state
        st.samples += len(chunk.samples)
        st.chunks += 1
        st.last_sample_monotonic = time.monotonic()
        if self._extractor is None or chunk.start != self._expected:
            # A new stream, or samples were lost (a sequence gap): the extractor starts over
            # and sees sample indices counted from this chunk.
            if self._extractor is not None:
                self._handle_beats(self._extractor.flush())
            self._extractor = BeatExtractor(chunk.fs)
            self._offset = chunk.start
        self._expected = chunk.end
        if self._offset:
            chunk = Chunk(
                chunk.start - self._offset,
                chunk.fs,
                chunk.samples,
                tuple((s - self._offset, sym) for s, sym in chunk.labels),
                chunk.t0,
            )
        self._handle_beats(self._extractor.push(chunk))

    def _handle_beats(self, beats: list[Beat]) -> None:
        if not beats:
            return
        st = self.state
        runtime, learner, fed = self.runtime, self.learner, self.federation
        index = {c: i for i, c in enumerate(CLASSES)}
        learn = self.config.learning.enabled
        for beat in beats:
            st.beats += 1
            if runtime is None or learner is None or fed is None:
                continue
            t0 = time.perf_counter()
            try:
                h = runtime.hidden_one(beat.features)
            except (ValueError, SmfelError) as err:
                st.bad_inputs += 1
                log.debug("beat at %d skipped: %s", beat.sample, err)
                continue
            latency = (time.perf_counter() - t0) * 1e6
            beta = self._beta
            predicted = 0 if beta is None else int(np.argmax(h @ beta))
            label = CLASSES[predicted]
            self.telemetry.add_beat(beat.time, label, latency)
            for alert in self.alerts.push(beat.time, label):
                st.alerts += 1
                self._publish_event(alert.to_dict())
            self._recent.append((int(beat.sample) + self._offset, float(beat.time), h))
            truth = index.get(beat.label) if beat.label is not None else None
            if truth is None:
                continue
            st.beats_labelled += 1
            if learn:
                fed.score(predicted == truth)
                self._learn(h, truth)
        self._try_answer()
        if self._since_checkpoint >= self.config.learning.checkpoint_every:
            self._checkpoint()

    def _learn(self, h: NDArray[np.float64], y: int) -> None:
        assert self.learner is not None
        self.learner.learn_hidden_one(h, y)
        self._beta = self.learner.beta_
        self.state.beats_learned += 1
        self._since_checkpoint += 1

    # -- federation ----------------------------------------------------------------------
    def _try_answer(self) -> None:
        fed = self.federation
        if fed is None or fed.pending is None:
            return
        update = fed.answer()
        if update is None:
            return
        # Checkpoint first: after a crash the round is answered (from the outbox) exactly once.
        self._checkpoint()
        if self._link is not None:
            self._link.publish_update(update)
        st = self.state
        st.rounds_answered += 1
        st.updates_published += 1
        st.last_answered_round = update.round
        st.changed()
        log.info(
            "round %d answered: %s update from %d beats",
            update.round,
            update.kind,
            update.n_samples,
        )
        if self._on_update is not None:
            self._on_update(self, update)

    def _enqueue(self, kind: str, payload: bytes) -> None:
        self._control.put((kind, payload))

    def _drain_control(self) -> None:
        while True:
            try:
                kind, payload = self._control.get_nowait()
            except queue.Empty:
                return
            try:
                self._handle_control(kind, payload)
            except Exception:  # a bad message is logged and counted, never fatal
                log.exception("%s message dropped", kind)
                self.state.messages_rejected += 1

    def _handle_control(self, kind: str, payload: Any) -> None:
        assert self._trusted is not None
        st = self.state
        if kind == "reload":
            self._reload(payload)
        elif kind == "bundle":
            self._receive_bundle(payload)
        elif kind == "round":
            ann = links.parse_round_announcement(payload, self._trusted)
            if isinstance(ann, str):
                self._rejected("round announcement", ann)
            elif self.federation is not None:
                self._align_parameters(ann)
                outcome = self.federation.announce(ann)
                log.info("round announcement: %s", outcome.reason)
                self._try_answer()
        elif kind == "global":
            gm = links.parse_global_model(payload, self._trusted)
            if isinstance(gm, str):
                st.globals_rejected += 1
                self._rejected("global model", gm)
            elif self.federation is not None:
                outcome = self.federation.adopt(gm)
                if outcome.accepted:
                    self._beta = self.federation.learner.beta_
                    atomic_write(self.paths["global"], payload, 0o600)
                    self._checkpoint()
                    st.last_adopted_round = gm.round
                    log.info("%s", outcome.reason)
                else:
                    st.globals_rejected += 1
                    self._rejected("global model", outcome.reason)
                st.changed()
        elif kind == "label":
            self._label_feedback(payload)

    def _align_parameters(self, ann: RoundAnnouncement) -> None:
        """Learn with the ridge and class weights the federation announces (the exact
        strategy sums statistics, so every device must weight beats alike)."""
        learner, fed = self.learner, self.federation
        assert learner is not None and fed is not None
        K = learner.n_classes
        want_w = tuple(float(w) for w in ann.class_weight)
        have_w = tuple(float(w) for w in learner.class_weight_) if learner.is_fitted else None
        if have_w is None and learner.class_weight is not None:
            have_w = tuple(float(w) for w in np.asarray(learner.class_weight))
        have_w = have_w or (1.0,) * K
        if len(want_w) != K:
            log.warning(
                "round %d announces %d class weights, the model has %d classes",
                ann.round,
                len(want_w),
                K,
            )
            return
        if learner.C == ann.C and np.allclose(have_w, want_w):
            return
        if learner.is_fitted and learner.n_seen_ > 0:
            log.warning(
                "round %d asks for C=%g and class weights %s; this device learned %d beats with "
                "C=%g and %s, and keeps them until its next model",
                ann.round,
                ann.C,
                want_w,
                learner.n_seen_,
                learner.C,
                have_w,
            )
            return
        fresh = OSELM(learner.hidden, learner.classes, C=float(ann.C), class_weight=list(want_w))
        self.learner = fed.learner = fresh
        self._beta = None
        log.info("learning with the federation's C=%g and class weights %s", ann.C, want_w)

    def _rejected(self, what: str, reason: str) -> None:
        self.state.messages_rejected += 1
        self.state.last_reject_reason = f"{what}: {reason}"
        log.warning("%s refused: %s", what, reason)
        self.state.changed()

    def _receive_bundle(self, payload: bytes) -> None:
        assert self._trusted is not None
        staging = self.config.state.path(f".bundle-{time.monotonic_ns()}")
        try:
            bundle_from_bytes(payload, staging)
            bundle = load_bundle(staging, self._trusted)
        except BundleError as err:
            shutil.rmtree(staging, ignore_errors=True)
            self._rejected("model bundle", err.reason)
            return
        current = self._bundle
        if current is not None and (
            bundle.model_hash == current.model_hash
            or bundle.manifest.created < current.manifest.created
        ):
            shutil.rmtree(staging, ignore_errors=True)
            return
        target = self.paths["bundle"]
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        if self.learner is not None:
            self._checkpoint()
        self._install_bundle(load_bundle(target, self._trusted))

    def _label_feedback(self, payload: bytes) -> None:
        """A clinician's label on ``nodes/{node}/labels``: ``{"time": T, "label": "V"}`` with the
        beat's time as the events carry it (``beat_time_s``, within 75 ms), or ``{"sample": N,
        "label": "V"}`` with its sample index (within 2 samples)."""
        expected = "{'time': seconds or 'sample': int, 'label': 'N|S|V|F'}"
        try:
            msg = json.loads(payload)
            label = str(msg["label"])
            when = float(msg["time"]) if "time" in msg else None
            sample = int(msg["sample"]) if when is None else None
        except (ValueError, KeyError, TypeError) as err:
            self._rejected("label", f"expected {expected}: {err}")
            return
        if label not in CLASSES or self.learner is None:
            self._rejected("label", f"label must be one of {CLASSES}, got {label!r}")
            return
        for s, t, h in reversed(self._recent):
            if (when is not None and abs(t - when) <= 0.075) or (
                sample is not None and abs(s - sample) <= 2
            ):
                self._learn(h, CLASSES.index(label))
                self.state.beats_labelled += 1
                return
        self._rejected("label", f"no recent beat at {msg.get('time', sample)}")

    def _reload(self, config: AgentConfig | None) -> None:
        if config is None:
            if self.config_path is None:
                return
            try:
                config = load_config(self.config_path)
            except ConfigError as err:
                for line in err.problems:
                    log.error("reload refused: %s", line)
                return
        old = self.config
        for section in ("node", "source", "mqtt", "model", "runtime", "state"):
            if getattr(old, section) != getattr(config, section):
                log.warning("reload: [%s] changed; it takes effect at the next restart", section)
        self.config = _replace_reloadable(old, config)
        self.alerts.reconfigure(self.config.alerts)
        if self.federation is not None:
            self.federation.min_beats = self.config.learning.min_beats
        log.info("configuration reloaded")

    # -- publishing ----------------------------------------------------------------------
    def _birth(self) -> dict[str, Any]:
        return {
            "state": "online",
            "node": self.config.node.id,
            "board": self.config.board,
            "model": self.state.model_hash,
            "runtime": self.state.runtime,
            "ts": utc_now(),
        }

    def _publish_event(self, event: dict[str, Any]) -> None:
        if self._link is not None:
            self._link.publish_event({"ts": utc_now(), "node": self.config.node.id, **event})

    def _publish_discovery(self) -> None:
        assert self._link is not None
        for topic, payload in discovery_messages(
            self.config.node.id,
            telemetry_topic=self._link.topic("telemetry"),
            status_topic=self._link.topic("status"),
            discovery_prefix=self.config.telemetry.discovery_prefix,
            board=self.config.board,
        ):
            self._link.publish_raw(topic, payload, retain=True)

    def _periodic(self) -> None:
        now = time.monotonic()
        if now < self._next_telemetry:
            return
        self._next_telemetry = now + self.config.telemetry.interval
        record = self.telemetry.record(self._telemetry_extra())
        if self._link is not None:
            self._link.publish_telemetry(record)
        self._write_status()
        self.notifier.status(self._status_line())

    def _telemetry_extra(self) -> dict[str, Any]:
        st = self.state
        counters = getattr(self._source, "counters", None)
        source = {f"src_{k}": v for k, v in counters.as_dict().items()} if counters else {}
        return {
            **source,
            "state": st.phase,
            "model_round": st.last_adopted_round,
            "rounds_answered": st.rounds_answered,
            "beats_learned_total": st.beats_learned,
            "alerts_total": st.alerts,
            "bad_inputs_total": st.bad_inputs,
            "queue_depth": self._link.queue_depth() if self._link is not None else 0,
            "backend": st.runtime.get("backend", ""),
        }

    def _status_line(self) -> str:
        st = self.state
        return (
            f"{st.phase}: {st.beats} beats, {st.beats_learned} learned, "
            f"round {st.last_answered_round} answered, model round {st.last_adopted_round}"
        )

    def _write_status(self) -> None:
        data = {**self.state.as_dict(), "ts": utc_now(), "board": self.config.board}
        with contextlib.suppress(OSError):
            atomic_write(self.paths["status"], json.dumps(data, indent=2).encode(), 0o644)


def backends(choice: str) -> tuple[str, ...]:
    """The runtime backends to try, in order, for the config's ``runtime.backend``."""
    return ("litert", "tflite_runtime", "numpy") if choice == "auto" else (choice, "numpy")


def _replace_reloadable(old: AgentConfig, new: AgentConfig) -> AgentConfig:
    """``old`` with the sections that can change at run time taken from ``new``."""
    return dataclasses.replace(
        old,
        learning=new.learning,
        telemetry=new.telemetry,
        alerts=new.alerts,
        watchdog=new.watchdog,
    )
