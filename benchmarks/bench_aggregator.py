"""Aggregator throughput: verified updates per second and aggregation time by fleet size.

* ``verify``: the whole pipeline (size, JSON, registry lookup, canonical form, weights hash,
  Ed25519 signature, timestamp, nonce, round, duplicate, shape, finiteness) on 2,000 distinct
  signed ``beta`` updates at L = 256, K = 4, against a real SQLite registry: one by one
  (``Verifier.verify``) and in batches of ``BATCH`` (``Verifier.batch``, one registry snapshot
  and one clock reading per batch, as the service takes what is queued). Baseline in the same
  run, in alternating passes: Ed25519 alone on the same 2,000 signed messages with the library
  the pipeline uses (libsodium when PyNaCl is installed; OpenSSL too, for comparison).
  ``ed25519_share`` is the fraction of the pipeline's time that verification alone takes (the
  issue's reference machine: about 72 us, so about 14,000 per second is the ceiling of a core).
* ``aggregate``: ``exact`` (sum of L x L statistics, one Cholesky solve) and ``fedavg``
  (weighted mean of L x K matrices) for 100 and 1,000 nodes.
"""

from __future__ import annotations

import base64
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._core import Result, benchmark, time_per_call
from smfel.agent.keys import Ed25519PrivateKey, backend_for, key_id, public_key_raw, verify_raw
from smfel.agent.protocol import Update, parse_update
from smfel.aggregator.pipeline import Limits, Verifier
from smfel.aggregator.registry import Registry, parse_enrolment
from smfel.aggregator.strategies import AcceptedUpdate, Exact, FedAvg

L, K = 256, 4
MODEL = "sha256:" + "cd" * 32
#: Updates per batch in the batch figure (the service takes up to this many off its queue).
BATCH = 64


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
        # The bytes each signature covers, for Ed25519 alone on the same distinct messages.
        signed = []
        for payload in payloads:
            u = parse_update(payload)
            signed.append((u.signed_bytes(), base64.b64decode(u.signature)))
        pubs = [keys[j % n_nodes].public_key() for j in range(n_updates)]
        backend = backend_for(len(signed[0][0]))
        samples: dict[str, list[float]] = {"one": [], "batch": [], "bare": [], "openssl": []}
        for _ in range(5):
            # Alternating passes, so that a change of machine load hits every figure alike.
            # A fresh verifier each time: its nonce memory would refuse the second pass.
            verifier = Verifier(reg, limits, "beta")
            t0 = time.perf_counter()
            for payload in payloads:
                verifier.verify(payload, round=1)
            samples["one"].append((time.perf_counter() - t0) / n_updates)
            verifier = Verifier(reg, limits, "beta")
            t0 = time.perf_counter()
            for i in range(0, n_updates, BATCH):
                batch = verifier.batch()
                for payload in payloads[i : i + BATCH]:
                    batch.verify(payload, round=1)
            samples["batch"].append((time.perf_counter() - t0) / n_updates)
            for name, lib in (("bare", backend), ("openssl", "openssl")):
                t0 = time.perf_counter()
                for pub, (data, sig) in zip(pubs, signed, strict=True):
                    verify_raw(pub, data, sig, backend=lib)
                samples[name].append((time.perf_counter() - t0) / n_updates)
        reg.close()
    size = len(payloads[0])
    bare = float(np.median(samples["bare"]))

    def entry(name: str, key: str, unit: str, **extra: Any) -> Result:
        xs = samples[key]
        med = float(np.median(xs))
        return Result(
            name,
            {"L": L, "K": K, "payload_bytes": size},
            med,
            min(xs),
            max(xs),
            unit,
            baseline="aggregator.ed25519_verify" if unit == "s/update" else None,
            extra={"per_second": round(1.0 / med, 1), **extra},
        )

    return [
        entry(
            "aggregator.verify_beta_update",
            "one",
            "s/update",
            target_per_second=5000,
            bare_verify_per_second=round(1.0 / bare, 1),
            ed25519_share=round(bare / float(np.median(samples["one"])), 3),
        ),
        entry(
            "aggregator.verify_beta_update_batch",
            "batch",
            "s/update",
            batch=BATCH,
            target_per_second=5000,
            bare_verify_per_second=round(1.0 / bare, 1),
            ed25519_share=round(bare / float(np.median(samples["batch"])), 3),
        ),
        entry("aggregator.ed25519_verify", "bare", "s/verify", ed25519=backend),
        entry("aggregator.ed25519_verify_openssl", "openssl", "s/verify", ed25519="openssl"),
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
