"""Signed envelopes at L = 256: create+sign and parse+verify of ``beta`` (256x4) and ``stats``
(U 256x256, V 256x4) updates, beside the bare Ed25519 sign/verify of the same signed bytes.

The difference between an envelope figure and its baseline is the cost of the format: canonical
JSON, base64, the SHA-256 weights hash, the strict parser's checks. The baseline of parse+verify
is the bare verification by the library the parser uses for that message size
(:mod:`smfel.agent.keys`: libsodium when PyNaCl is installed, else OpenSSL; above 32 KB OpenSSL
only in a process that asked for it, the aggregator, whose parse+verify of ``stats`` is measured
too); every installed library signs and verifies the same bytes, so the choice can be checked. Parsing one
envelope over and over keeps it in the cache; a receiver sees each payload once, so ``beta`` is
also parsed over 1,000 distinct payloads, each once per pass. The statistics bounds check
(symmetry, eigenvalues for positive semi-definiteness, Cauchy-Schwarz) the aggregator runs on a
``stats`` update is measured too. ``extra`` names the Ed25519 and base64 libraries in use.
"""

from __future__ import annotations

import base64
from functools import partial
from typing import Any

import numpy as np

from benchmarks._core import Result, benchmark, time_per_call
from smfel.agent import codec, keys
from smfel.agent.keys import Ed25519PrivateKey, sign_raw, verify_raw
from smfel.agent.protocol import Update, check_statistics_bounds, parse_update

L, K, N = 256, 4, 2000


def _arrays(kind: str) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    H = 1.0 / (1.0 + np.exp(-rng.normal(size=(N, L))))
    y = rng.integers(0, K, N)
    if kind == "beta":
        return {"beta": rng.normal(size=(L, K)), "class_counts": np.bincount(y, minlength=K)}
    return {"U": H.T @ H, "V": H.T @ np.eye(K)[y], "class_counts": np.bincount(y, minlength=K)}


def _result(
    name: str, kind: str, t: tuple[float, float, float], baseline: str | None, **extra: Any
) -> Result:
    return Result(
        name=name,
        parameters={"L": L, "K": K, "kind": kind},
        median=t[0],
        min=t[1],
        max=t[2],
        unit="s/envelope",
        baseline=baseline,
        extra={"per_second": round(1.0 / t[0], 1), **extra},
    )


@benchmark("protocol")
def bench_protocol() -> list[Result]:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    libraries = {"base64": codec.BASE64_BACKEND}
    out: list[Result] = []
    for kind in ("beta", "stats"):
        arrays = _arrays(kind)

        def create(kind: str = kind, arrays: dict[str, Any] = arrays) -> bytes:
            return Update.create(
                key,
                node_id="bench",
                round=1,
                kind=kind,  # type: ignore[arg-type]
                arrays=arrays,
                n_samples=N,
                local_accuracy=0.9,
                model_hash="sha256:" + "0" * 64,
            ).to_bytes()

        wire = create()
        u = parse_update(wire, public_key=pub)
        signed = u.signed_bytes()
        signature = base64.b64decode(u.signature)
        number = 200 if kind == "beta" else 5
        used = keys.backend_for(len(signed))
        baseline = f"bare Ed25519 verify ({kind}, {used})"
        out.append(
            _result(
                f"envelope create+sign ({kind})",
                kind,
                time_per_call(create, number=number),
                f"bare Ed25519 sign ({kind}, {used})",
                payload_bytes=len(wire),
                ed25519=used,
                **libraries,
            )
        )
        for backend in keys.BACKENDS:
            out.append(
                _result(
                    f"bare Ed25519 sign ({kind}, {backend})",
                    kind,
                    time_per_call(partial(sign_raw, key, signed, backend=backend), number=number),
                    None,
                    signed_bytes=len(signed),
                    ed25519=backend,
                )
            )
        out.append(
            _result(
                f"envelope parse+verify ({kind})",
                kind,
                time_per_call(partial(parse_update, wire, public_key=pub), number=number),
                baseline,
                payload_bytes=len(wire),
                ed25519=used,
                **libraries,
            )
        )
        for backend in keys.BACKENDS:
            out.append(
                _result(
                    f"bare Ed25519 verify ({kind}, {backend})",
                    kind,
                    time_per_call(
                        partial(verify_raw, pub, signed, signature, backend=backend),
                        number=number,
                    ),
                    None,
                    signed_bytes=len(signed),
                    ed25519=backend,
                )
            )
        if kind == "beta":
            distinct = [create() for _ in range(1000)]

            def parse_all(payloads: list[bytes] = distinct) -> None:
                for p in payloads:
                    parse_update(p, public_key=pub)

            out.append(
                _result(
                    "envelope parse+verify (beta, distinct payloads)",
                    kind,
                    time_per_call(parse_all, number=1, repeat=5, per=len(distinct)),
                    baseline,
                    payload_bytes=len(wire),
                    ed25519=used,
                    **libraries,
                )
            )
        if kind == "stats" and keys.use_openssl_for_large_messages() != used:
            try:
                out.append(
                    _result(
                        "envelope parse+verify (stats, aggregator)",
                        kind,
                        time_per_call(partial(parse_update, wire, public_key=pub), number=number),
                        "bare Ed25519 verify (stats, openssl)",
                        payload_bytes=len(wire),
                        ed25519="openssl",
                        **libraries,
                    )
                )
            finally:
                keys.use_openssl_for_large_messages(False)
        if kind == "stats":
            U, V, c = u.arrays["U"], u.arrays["V"], u.arrays["class_counts"]
            out.append(
                _result(
                    "statistics bounds check (stats)",
                    kind,
                    time_per_call(
                        lambda: check_statistics_bounds(U, V, N, L, "sigmoid", class_counts=c),
                        number=5,
                    ),
                    None,
                )
            )
    return out
