"""RLS learner speed and memory: one beat at a time, blocks of 50, and the batch re-solve.

Baselines in the same run: a plain numpy RLS update (``np.outer`` temporaries, full matrices)
for the per-beat entry, and the exact batch re-solve (Cholesky of ``U + I/C``) for the block.
Every figure includes the update of the sufficient statistics ``U`` and ``V``.

``rls_update_block_blas_floor`` times, alone, the three BLAS-3 calls that any Woodbury block
update with statistics must make (``G = P H^T``, ``P -= A A^T``, ``U += H^T W H``: ``4 L^2 m``
flops for a block of ``m``), so the block figure can be read against what the core can do at all;
its ``extra`` gives the core's dgemm rate on large matrices. ``extra.blas`` names the BLAS in use
(``smfel.agent._lapack.BACKEND``: numpy's OpenBLAS through ctypes, or scipy's wrappers when
``SMFEL_BLAS=scipy``).
"""

from __future__ import annotations

import numpy as np

from benchmarks._core import Result, benchmark, peak_memory, time_per_call
from smfel.agent import OSELM, HiddenLayer, _lapack
from smfel.agent._lapack import Operand

SIZES = (128, 256, 512)
D = 32
BLOCK = 50


class _NumpyRLS:
    """The textbook update with plain numpy, the baseline the BLAS path is compared with."""

    def __init__(self, L: int, K: int, C: float) -> None:
        self.P = np.eye(L) * C
        self.beta = np.zeros((L, K))
        self.U = np.zeros((L, L))
        self.V = np.zeros((L, K))

    def learn(self, h: np.ndarray, y: int, w: float) -> None:
        g = self.P @ h
        den = 1.0 / w + h @ g
        t = np.zeros(self.beta.shape[1])
        t[y] = 1.0
        self.beta += np.outer(g / den, t - h @ self.beta)
        self.P -= np.outer(g, g) / den
        self.U += w * np.outer(h, h)
        self.V += w * np.outer(h, t)

    def learn_block(self, H: np.ndarray, y: np.ndarray) -> None:
        m, K = len(y), self.beta.shape[1]
        T = np.zeros((m, K))
        T[np.arange(m), y] = 1.0
        G = self.P @ H.T
        Sinv = np.linalg.inv(H @ G + np.eye(m))
        self.beta += G @ (Sinv @ (T - H @ self.beta))
        self.P -= G @ Sinv @ G.T
        self.U += H.T @ H
        self.V += H.T @ T


def _dgemm_gflops() -> float:
    """This core's double-precision matrix-multiply rate on 1024 x 1024 matrices."""
    A = Operand(np.asfortranarray(np.ones((1024, 1024))))
    C = Operand(np.empty((1024, 1024), order="F"))
    med, _, _ = time_per_call(lambda: _lapack.gemm(False, 1.0, A, A, 0.0, C), number=3, repeat=5)
    return round(2 * 1024**3 / med / 1e9, 1)


def _learner(L: int) -> tuple[OSELM, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    hidden = HiddenLayer.generate(D, L, seed=1)
    learner = OSELM(hidden, ("N", "S", "V", "F"), C=10.0, class_weight=[0.3, 5.0, 3.0, 9.0])
    X = rng.normal(size=(1000, D))
    H = hidden.transform(X)
    y = rng.integers(0, 4, size=1000)
    learner.learn_hidden_many(H[:100], y[:100])
    return learner, H, y


@benchmark("learner")
def bench_learner() -> list[Result]:
    out: list[Result] = []
    for L in SIZES:
        learner, H, y = _learner(L)
        rows = [np.ascontiguousarray(h) for h in H]
        labels = [int(v) for v in y]
        i = [0]

        def one() -> None:
            k = i[0] = (i[0] + 1) % 1000
            learner.learn_hidden_one(rows[k], labels[k])

        n = 2000 if L < 512 else 500
        med, lo, hi = time_per_call(one, number=n, repeat=7)
        params = {"L": L, "K": 4, "dtype": "float64", "statistics": True}
        out.append(
            Result(
                "rls_update_one",
                params,
                med * 1e6,
                lo * 1e6,
                hi * 1e6,
                "us/beat",
                baseline="rls_update_one_numpy",
                extra={"blas": _lapack.BACKEND},
            )
        )

        base = _NumpyRLS(L, 4, 10.0)

        def one_np() -> None:
            k = i[0] = (i[0] + 1) % 1000
            base.learn(rows[k], labels[k], 1.0)

        med, lo, hi = time_per_call(one_np, number=n // 4, repeat=7)
        out.append(Result("rls_update_one_numpy", params, med * 1e6, lo * 1e6, hi * 1e6, "us/beat"))

        blocks = [(H[j : j + BLOCK], y[j : j + BLOCK]) for j in range(0, 1000, BLOCK)]
        b = [0]

        def block() -> None:
            k = b[0] = (b[0] + 1) % len(blocks)
            learner.learn_hidden_many(*blocks[k])

        med, lo, hi = time_per_call(block, number=max(10, 4000 // L), repeat=7, per=BLOCK)
        bparams = {**params, "block": BLOCK}
        out.append(
            Result(
                "rls_update_block",
                bparams,
                med * 1e6,
                lo * 1e6,
                hi * 1e6,
                "us/beat",
                baseline="resolve",
            )
        )

        P = Operand(np.asfortranarray(np.eye(L)))
        U = Operand(np.zeros((L, L), order="F"))
        HbT = Operand(np.ascontiguousarray(H[:BLOCK]).T)
        G = Operand(np.empty((L, BLOCK), order="F"))

        def floor() -> None:
            _lapack.gemm(False, 1.0, P, HbT, 0.0, G)
            _lapack.syrk(-1e-12, G, 1.0, P)
            _lapack.syrk(1.0, HbT, 1.0, U)

        med, lo, hi = time_per_call(floor, number=max(10, 4000 // L), repeat=7, per=BLOCK)
        out.append(
            Result(
                "rls_update_block_blas_floor",
                bparams,
                med * 1e6,
                lo * 1e6,
                hi * 1e6,
                "us/beat",
                extra={
                    "flops_per_beat": 4 * L * L,
                    "dgemm_gflops": _dgemm_gflops(),
                    "blas": _lapack.BACKEND,
                    "note": "the three BLAS-3 calls of a block update alone",
                },
            )
        )

        def block_np() -> None:
            k = b[0] = (b[0] + 1) % len(blocks)
            base.learn_block(*blocks[k])

        med, lo, hi = time_per_call(block_np, number=max(10, 4000 // L), repeat=7, per=BLOCK)
        out.append(
            Result("rls_update_block_numpy", bparams, med * 1e6, lo * 1e6, hi * 1e6, "us/beat")
        )

        med, lo, hi = time_per_call(learner.resolve, number=3, repeat=5)
        out.append(
            Result(
                "resolve",
                params,
                med * 1e6,
                lo * 1e6,
                hi * 1e6,
                "us/solve",
                extra={"note": "exact re-solve (U + I/C)^-1 V by Cholesky"},
            )
        )

        fresh, H2, y2 = _learner(L)

        def many() -> None:
            for j in range(0, 1000, BLOCK):
                fresh.learn_hidden_many(H2[j : j + BLOCK], y2[j : j + BLOCK])
            for j in range(200):
                fresh.learn_hidden_one(H2[j], int(y2[j]))

        peak = peak_memory(many)
        state = sum(a.nbytes for a in (fresh.P_, fresh.U_, fresh.V_, fresh.beta_))
        out.append(
            Result(
                "learner_peak_memory",
                params,
                peak / 1024,
                peak / 1024,
                peak / 1024,
                "KiB",
                extra={
                    "state_kib": state / 1024,
                    "note": "peak above the state while learning 1,200 beats",
                },
            )
        )
    return out
