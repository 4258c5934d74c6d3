"""Aggregator throughput: verified updates per second and aggregation time by fleet size.

* ``verify``: the whole pipeline (size, JSON, registry lookup, canonical form, weights hash,
  Ed25519 signature, timestamp, nonce, round, duplicate, shape, finiteness) on signed ``beta``
  updates at L = 256, K = 4, against a real SQLite registry. Baseline in the same run: Ed25519
  verification alone of the same signed bytes (about 72 us on the reference machine, so about
  14,000 per second is the ceiling for one core).
* ``aggregate``: ``exact`` (sum of L x L statistics, one Cholesky solve) and ``fedavg``
  (weighted mean of L x K matrices) for 100 and 1,000 nodes.
"""

from __future__ import annotations

import base64
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._core import Result, benchmark, time_per_call
from smfel.agent.keys import Ed25519PrivateKey, key_id, public_key_raw
from smfel.agent.protocol import Update
from smfel.aggregator.pipeline import Limits, Verifier
from smfel.aggregator.registry import Registry, parse_enrolment
from smfel.aggregator.strategies import AcceptedUpdate, Exact, FedAvg

L, K = 256, 4
MODEL = "sha256:" + "cd" * 32


def _verify_results() -> list[Result]:
    rng = np.random.default_rng(0)
    n_nodes, n_updates = 50, 2000
    keys = [Ed25519PrivateKey.generate() for _ in range(n_nodes)]
    with tempfile.TemporaryDirectory() as tmp:
        reg = Registry(Path(tmp) / "registry.sqlite").open()
        for i, k in enumerate(keys):
            reg.add(
                parse_enrolment(
                    {
                        "node_id": f"n{i}",
                        "key_id": key_id(k),
                        "public_key": base64.b64encode(public_key_raw(k.public_key())).decode(),
                    }
                )
            )
        payloads = [
            Update.create(
                keys[j % n_nodes],
                node_id=f"n{j % n_nodes}",
                round=1,
                kind="beta",
                arrays={"beta": rng.normal(size=(L, K))},
                n_samples=500,
                local_accuracy=0.9,
                model_hash=MODEL,
            ).to_bytes()
            for j in range(n_updates)
        ]
        limits = Limits(n_hidden=L, classes=("N", "S", "V", "F"), class_weight=(1, 1, 1, 1))
        samples = []
        for _ in range(5):
            # A fresh verifier each time: its nonce memory would refuse the second pass.
            verifier = Verifier(reg, limits, "beta")
            t0 = time.perf_counter()
            for payload in payloads:
                verifier.verify(payload, round=1)
            samples.append((time.perf_counter() - t0) / len(payloads))
        reg.close()
    size = len(payloads[0])
    med = float(np.median(samples))
    # Ed25519 alone on the same bytes
    key = keys[0]
    msg = payloads[0]
    sig = key.sign(msg)
    pub = key.public_key()
    e_med, e_lo, e_hi = time_per_call(lambda: pub.verify(sig, msg), number=2000, repeat=7)
    return [
        Result(
            "aggregator.verify_beta_update",
            {"L": L, "K": K, "payload_bytes": size},
            med,
            min(samples),
            max(samples),
            "s/update",
            baseline="aggregator.ed25519_verify",
            extra={"updates_per_second": 1.0 / med, "target_per_second": 5000},
        ),
        Result(
            "aggregator.ed25519_verify",
            {"message_bytes": size},
            e_med,
            e_lo,
            e_hi,
            "s/verify",
            extra={"verifies_per_second": 1.0 / e_med},
        ),
    ]


def _aggregate_results() -> list[Result]:
    rng = np.random.default_rng(1)
    out = []
    A = rng.random((64, L))
    U0 = A.T @ A
    V0 = rng.random((L, K))
    counts = np.array([40, 10, 10, 4], dtype=np.int64)
    for n in (100, 1000):
        stats = [
            AcceptedUpdate(
                f"n{i}", 1, "stats", 64, f"h{i}", {"U": U0, "V": V0, "class_counts": counts}
            )
            for i in range(n)
        ]
        betas = [
            AcceptedUpdate(f"n{i}", 1, "beta", 64, f"h{i}", {"beta": rng.normal(size=(L, K))})
            for i in range(n)
        ]
        for name, strategy, ups in (("exact", Exact(C=1.0), stats), ("fedavg", FedAvg(), betas)):
            med, lo, hi = time_per_call(
                lambda s=strategy, u=ups: s.aggregate(u, None),  # type: ignore[misc]
                number=1,
                repeat=5,
            )
            out.append(
                Result(
                    f"aggregator.aggregate_{name}", {"nodes": n, "L": L, "K": K}, med, lo, hi, "s"
                )
            )
        del stats, betas
    return out


@benchmark("aggregator")
def aggregator() -> list[Result]:
    return _verify_results() + _aggregate_results()
