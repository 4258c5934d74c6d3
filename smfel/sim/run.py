"""The fleet simulation: real agents' code, a real broker, the real aggregator, per-round metrics.

``run_fleet`` starts a private Mosquitto (:mod:`smfel.sim.broker`), issues the model bundle
(:func:`smfel.aggregator.model.init_model`, scaling calibrated on the training nodes' first
segments), enrols one key per node in the registry, starts the aggregator in-process with
``manual_rounds``, and then for each round: every device replays its next segment and learns it,
the aggregator announces the round, the devices answer with signed updates, the round closes,
the global model is published and adopted, and the global ``beta`` is scored on the test beats.

A device is the real agent daemon (:mod:`smfel.sim.agentnode`, the default ``driver``), started
on each round's segment and resuming from its checkpoint, or (``driver="node"``) the agent's
components over one continuous stream (:mod:`smfel.sim.node`), which has no segment edges.

With the ``exact`` strategy the final global model is also compared with the centralised fit on
the pooled beats every node learned (the same features through the same runtime), and the
largest absolute difference of the output weights is reported as ``exact_max_delta``.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from smfel.agent.bundle import load_bundle
from smfel.agent.keys import (
    Ed25519PrivateKey,
    key_id,
    public_key_raw,
    use_openssl_for_large_messages,
)
from smfel.agent.learner import OSELM
from smfel.agent.model_defaults import DEFAULT_C, DEFAULT_HIDDEN, default_class_weights
from smfel.agent.runtime import open_runtime
from smfel.aggregator.config import (
    AggregatorConfig,
    ModelSection,
    MqttSection,
    RoundsSection,
    ServiceSection,
)
from smfel.aggregator.model import init_model
from smfel.aggregator.registry import parse_enrolment
from smfel.aggregator.rounds import RoundResult
from smfel.aggregator.service import Aggregator
from smfel.sim.agentnode import AgentNode
from smfel.sim.broker import Broker
from smfel.sim.metrics import confusion_matrix, report
from smfel.sim.node import CLASSES, SimNode, stream_beats

__all__ = ["FleetSpec", "NodeSpec", "TestSet", "run_fleet"]

log = logging.getLogger(__name__)

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A device replaying ``url``; round ``r`` takes the beats in ``[edges[r-1], edges[r])``
    seconds from the start of the stream."""

    node_id: str
    url: str
    edges: tuple[float, ...]
    #: The same data as separate sources, one per round (what a restarted agent replays).
    segments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class TestSet:
    """Feature vectors and class indices the global model is scored on every round."""

    X: F64
    y: NDArray[np.intp]
    description: str = ""


@dataclass(frozen=True, slots=True)
class FleetSpec:
    nodes: tuple[NodeSpec, ...]
    strategy: str = "exact"
    n_hidden: int = DEFAULT_HIDDEN
    C: float = DEFAULT_C
    #: ``None``: the default policy (:func:`default_class_weights`) applied to the class counts
    #: of the calibration beats, the issuer's only data before the federation starts.
    class_weight: tuple[float, ...] | None = None
    min_beats: int = 50
    seed: int = 1
    round_timeout: float = 120.0
    #: ``agent``: every device is the real agent daemon, restarted on each round's segment;
    #: ``node``: the agent's components driven over one continuous stream per device.
    driver: Literal["agent", "node"] = "agent"

    @property
    def rounds(self) -> int:
        return min(len(n.edges) - 1 for n in self.nodes)


Progress = Callable[[dict[str, Any]], None]


def _score(hidden_beta: tuple[Any, F64], test: TestSet) -> dict[str, Any]:
    hidden, beta = hidden_beta
    pred = (hidden.transform(test.X) @ beta).argmax(axis=1)
    rep = report(confusion_matrix(test.y, pred, len(CLASSES)), CLASSES)
    return {
        "accuracy": rep["accuracy"],
        "j_index": rep["j_index"],
        "classes": {c: {"se": v["se"], "ppv": v["ppv"]} for c, v in rep["classes"].items()},
    }


def _calibration(spec: FleetSpec) -> tuple[F64, tuple[float, ...]]:
    """Features of the beats of every node's first segment (what the issuer has before the
    federation starts) and the class weights every device will use."""
    rows = []
    counts = np.zeros(len(CLASSES), dtype=np.int64)
    for n in spec.nodes:
        for t, f, label in stream_beats(n.url):
            if t >= n.edges[1]:
                break
            rows.append(f)
            if label in CLASSES:
                counts[CLASSES.index(label)] += 1
    if len(rows) < 2:
        raise ValueError("the calibration segments hold fewer than two beats")
    if spec.class_weight is not None:
        weights = tuple(float(w) for w in spec.class_weight)
    else:
        weights = tuple(float(w) for w in default_class_weights(counts))
    return np.vstack(rows), weights


def run_fleet(
    spec: FleetSpec, test: TestSet, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Run the federation round by round; returns the JSON-ready result (see module doc)."""
    if not spec.nodes:
        raise ValueError("a fleet needs at least one node")
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="smfel-sim-") as tmp, Broker() as broker:
        root = Path(tmp)
        issuer = Ed25519PrivateKey.generate()
        calibration, weights = _calibration(spec)
        spec = replace(spec, class_weight=weights)
        issued = init_model(
            root / "model",
            calibration,
            signing_key=issuer,
            n_hidden=spec.n_hidden,
            seed=spec.seed,
        )
        bundle = load_bundle(root / "model", {key_id(issuer): issuer.public_key()})
        cfg = AggregatorConfig(
            service=ServiceSection(state_dir=str(root / "aggregator")),
            model=ModelSection(
                bundle=str(root / "model"),
                classes=CLASSES,
                C=spec.C,
                class_weight=weights,
            ),
            rounds=RoundsSection(
                strategy=spec.strategy,
                quorum=1,
                duration=spec.round_timeout,
                min_beats=spec.min_beats,
                max_payload=64 * 1024 * 1024,
                seed=spec.seed,
            ),
            mqtt=MqttSection(host=broker.host, port=broker.port, client_id="sim-aggregator"),
        ).validate()
        Path(cfg.service.state_dir).mkdir(parents=True)
        nodes: list[Any] = []
        for n in spec.nodes:
            if spec.driver == "agent":
                nodes.append(
                    AgentNode(
                        n.node_id,
                        Ed25519PrivateKey.generate(),
                        n.segments,
                        bundle,
                        issuer.public_key(),
                        spec.C,
                        weights,
                        spec.min_beats,
                        root / "devices" / n.node_id,
                    )
                )
            else:
                nodes.append(
                    SimNode(
                        n.node_id,
                        Ed25519PrivateKey.generate(),
                        n.url,
                        n.edges,
                        bundle,
                        issuer.public_key(),
                        spec.C,
                        weights,
                        spec.min_beats,
                    )
                )
        results: dict[int, RoundResult] = {}
        closed = threading.Condition()

        def on_round(res: RoundResult) -> None:
            with closed:
                results[res.round] = res
                closed.notify_all()

        use_openssl_for_large_messages()  # as `smfel-aggregator serve` does
        agg = Aggregator(cfg, signing_key=issuer, on_round=on_round, manual_rounds=True)
        agg.start()
        assert agg.registry is not None
        for node in nodes:
            agg.registry.add(
                parse_enrolment(
                    {
                        "node_id": node.node_id,
                        "key_id": key_id(node.key),
                        "public_key": base64.b64encode(
                            public_key_raw(node.key.public_key())
                        ).decode(),
                    }
                )
            )
        rows: list[dict[str, Any]] = []
        try:
            for node in nodes:
                node.start(broker.host, broker.port)
            for r in range(spec.rounds):
                t0 = time.perf_counter()
                for node in nodes:
                    node.begin_segment(r)
                learned = sum(node.finish_segment() for node in nodes)
                expect = [n.node_id for n in nodes if n.beats_pending() >= spec.min_beats]
                agg.announce_next(expect)
                with closed:
                    if not closed.wait_for(
                        partial(results.__contains__, r + 1), spec.round_timeout + 30
                    ):
                        raise TimeoutError(f"round {r + 1} did not close")
                res = results[r + 1]
                heard = {a[0] for a in res.accepted} | {j[0] for j in res.rejected}
                if missing := sorted(set(expect) - heard):
                    log.warning("round %d closed without an update from %s", r + 1, missing)
                if res.state is not None:
                    for node in nodes:
                        if not node.wait_adopted(r + 1):
                            log.warning(
                                "%s did not adopt the global model of round %d", node.node_id, r + 1
                            )
                beta = agg.global_state.beta if agg.global_state is not None else None
                row: dict[str, Any] = {"round": r + 1}
                if beta is not None:
                    row.update(_score((bundle.hidden, beta), test))
                else:
                    row.update({"accuracy": None, "j_index": None, "classes": {}})
                row.update(
                    accepted=len(res.accepted),
                    rejected=len(res.rejected),
                    beats=learned,
                    seconds=round(time.perf_counter() - t0, 3),
                )
                rows.append(row)
                if progress is not None:
                    progress(row)
        finally:
            for node in nodes:
                node.stop()
            agg.stop()
        out: dict[str, Any] = {
            "strategy": spec.strategy,
            "nodes": [n.node_id for n in spec.nodes],
            "test": test.description,
            "test_beats": int(len(test.y)),
            "n_hidden": spec.n_hidden,
            "C": spec.C,
            "class_weight": list(weights),
            "model_hash": issued.model_hash,
            "rounds": rows,
        }
        if spec.strategy == "exact" and agg.global_state is not None:
            central = _centralised(nodes, bundle, spec)
            out["exact_max_delta"] = float(np.abs(central - agg.global_state.beta).max())
            out["centralised"] = _score((bundle.hidden, central), test)
        out["seconds"] = round(time.perf_counter() - t_start, 3)
        return out


def _pooled(nodes: Sequence[Any], spec: FleetSpec) -> tuple[list[F64], list[int]]:
    """Every labelled beat the devices learned: recorded by the component nodes; recomputed
    from the very segments the agents replayed (same extractor, fresh for each segment)."""
    if spec.driver == "node":
        return [x for n in nodes for x in n.learned_features], [
            v for n in nodes for v in n.learned_y
        ]
    X: list[F64] = []
    y: list[int] = []
    for n in spec.nodes:
        for url in n.segments[: spec.rounds]:
            for _, f, label in stream_beats(url):
                if label in CLASSES:
                    X.append(f)
                    y.append(CLASSES.index(label))
    return X, y


def _centralised(nodes: Sequence[Any], bundle: Any, spec: FleetSpec) -> F64:
    """The fit on every beat every node learned, pooled in one place (the reference)."""
    runtime = open_runtime(bundle)
    try:
        rows, labels = _pooled(nodes, spec)
        y = np.asarray(labels, dtype=np.intp)
        H = np.vstack([runtime.hidden_one(x) for x in rows])
    finally:
        runtime.close()
    learner = OSELM(bundle.hidden, CLASSES, C=spec.C, class_weight=spec.class_weight)
    # In blocks: the Woodbury step builds an (m, m) matrix for a block of m beats.
    for i in range(0, len(y), 256):
        learner.learn_hidden_many(H[i : i + 256], y[i : i + 256])
    learner.resolve()
    return np.array(learner.beta_)


# -- fleets -------------------------------------------------------------------------------------


def _edges(duration: float, rounds: int) -> tuple[float, ...]:
    return tuple(float(e) for e in np.linspace(0.0, duration, rounds + 1))


def mitdb_fleet(
    data: str | Path,
    nodes: Sequence[str],
    rounds: int,
    *,
    max_seconds: float | None = None,
    **params: Any,
) -> FleetSpec:
    """One node per record; record ``R`` (its first ``max_seconds``, default all of it) is cut
    into ``rounds`` equal segments."""
    from smfel.sensors.wfdbio import read_header

    specs = []
    for rec in nodes:
        header = read_header(data, rec)
        duration = header.n_samples / header.fs
        if max_seconds is not None:
            duration = min(duration, max_seconds)
        base = f"wfdb://{Path(data).resolve()}/{rec}?speed=0"
        url = base if max_seconds is None else f"{base}&end={duration:.3f}"
        edges = _edges(duration, rounds)
        segments = tuple(
            f"{base}&start={edges[i]:.3f}&end={edges[i + 1]:.3f}" for i in range(rounds)
        )
        specs.append(NodeSpec(rec, url, edges, segments))
    return FleetSpec(nodes=tuple(specs), **params)


def mitdb_test(data: str | Path, records: Sequence[str]) -> TestSet:
    """Annotated beats of the test records in AAMI classes N, S, V, F (Q left out)."""
    from smfel.sensors.records import load_record_beats

    Xs, ys = [], []
    for rec in records:
        rb = load_record_beats(data, rec)
        keep = np.isin(rb.labels, CLASSES)
        Xs.append(rb.X[keep])
        ys.append(np.asarray([CLASSES.index(str(c)) for c in rb.labels[keep]], dtype=np.intp))
    return TestSet(np.vstack(Xs), np.concatenate(ys), f"MIT-BIH {','.join(records)}")


def synthetic_fleet(
    n_nodes: int = 6, rounds: int = 5, segment_seconds: float = 60.0, **params: Any
) -> FleetSpec:
    """Synthetic ECG nodes with different heart rates and ectopic-beat rates."""
    rng = np.random.default_rng(params.get("seed", 1))
    specs = []
    for k in range(n_nodes):
        hr = int(rng.integers(60, 95))
        pvc, apc = (
            round(float(rng.uniform(0.02, 0.12)), 3),
            round(float(rng.uniform(0.01, 0.08)), 3),
        )
        base = f"synthetic://?hr={hr}&pvc={pvc}&apc={apc}&speed=0"
        url = f"{base}&seed={1000 * (k + 1)}&duration={segment_seconds * rounds}"
        segments = tuple(
            f"{base}&seed={1000 * (k + 1) + r}&duration={segment_seconds}" for r in range(rounds)
        )
        specs.append(
            NodeSpec(f"node-{k + 1:02d}", url, _edges(segment_seconds * rounds, rounds), segments)
        )
    return FleetSpec(nodes=tuple(specs), **params)


def synthetic_test(seconds: float = 300.0, seed: int = 99) -> TestSet:
    """Beats of unseen synthetic ECG (other seeds), labelled by the generator."""
    Xs, ys = [], []
    for k, (pvc, apc) in enumerate(((0.1, 0.05), (0.05, 0.1))):
        url = f"synthetic://?hr=75&pvc={pvc}&apc={apc}&seed={seed + k}&duration={seconds}&speed=0"
        for _, f, label in stream_beats(url):
            if label in CLASSES:
                Xs.append(f)
                ys.append(CLASSES.index(label))
    return TestSet(np.vstack(Xs), np.asarray(ys, dtype=np.intp), "synthetic")
