"""The fixed learning stream of the cross-platform test, and its reference weights.

The learner's maths must not depend on the platform: the same stream learned on an x86_64 host
and on an emulated ARM board must give output weights equal within 1e-9. The stream is built
from integers scaled by a power of two and the hidden layer from numpy's PCG64 generator, so
the inputs are bit-identical everywhere; only the floating-point work of the learner (BLAS,
LAPACK, ``exp``) runs on each platform's own code.

``cross_build/qemu/run`` computes the reference natively on the host with
``python -m tests.device.reference --out FILE`` and passes FILE to the emulated test run in
``SMFEL_HOST_REFERENCE``.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from smfel.agent.hidden import HiddenLayer
from smfel.agent.learner import OSELM

__all__ = [
    "BLOCK",
    "Reference",
    "Stream",
    "batch_reference",
    "fixed_stream",
    "learn_blocks",
    "learn_stream",
    "load_reference",
    "streamed_reference",
]

F64 = NDArray[np.float64]

N_BEATS = 600
N_FEATURES = 24
N_HIDDEN = 64
CLASSES = ("N", "S", "V", "F")
CLASS_WEIGHT = (1.0, 4.0, 2.0, 8.0)
C = 4.0
BLOCK = 25


@dataclass(frozen=True, slots=True)
class Stream:
    hidden: HiddenLayer
    X: F64  # (n, d) beats
    y: NDArray[np.int64]  # (n,) class indices
    probe: F64  # (m, d) beats to score with the learned weights


@dataclass(frozen=True, slots=True)
class Reference:
    beta: F64  # (L, K) output weights after the stream
    scores: F64  # (m, K) class scores of the probe beats
    machine: str  # platform.machine() of the computer that made it


def fixed_stream(seed: int = 20061110) -> Stream:
    """The stream: exact dyadic inputs, so every platform starts from the same bits."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-512, 512, size=(N_BEATS, N_FEATURES)).astype(np.float64) / 256.0
    y = rng.integers(0, len(CLASSES), size=N_BEATS).astype(np.int64)
    probe = rng.integers(-512, 512, size=(40, N_FEATURES)).astype(np.float64) / 256.0
    hidden = HiddenLayer.generate(N_FEATURES, N_HIDDEN, seed=seed + 1)
    return Stream(hidden, X, y, probe)


def _learner(stream: Stream) -> OSELM:
    return OSELM(stream.hidden, CLASSES, C=C, class_weight=CLASS_WEIGHT)


def learn_stream(stream: Stream) -> OSELM:
    """Learn the stream one beat at a time, as the daemon does."""
    learner = _learner(stream)
    for x, label in zip(stream.X, stream.y, strict=True):
        learner.learn_one(x, int(label))
    return learner


def learn_blocks(stream: Stream) -> OSELM:
    """Learn the stream in blocks of ``BLOCK`` beats (the block RLS path)."""
    learner = _learner(stream)
    for start in range(0, N_BEATS, BLOCK):
        learner.learn_many(stream.X[start : start + BLOCK], stream.y[start : start + BLOCK])
    return learner


def streamed_reference(stream: Stream) -> Reference:
    learner = learn_stream(stream)
    beta = np.array(learner.beta_, dtype=np.float64)
    return Reference(beta, learner.predict_many(stream.probe), platform.machine())


def batch_reference(stream: Stream) -> Reference:
    """The weighted ridge solution in closed form, ``(H^T W H + I/C)^-1 H^T W T``.

    An independent computation (one dense solve, no recursion) of what the stream must reach.
    """
    H = stream.hidden.transform(stream.X)
    w = np.asarray(CLASS_WEIGHT)[stream.y]
    T = np.zeros((N_BEATS, len(CLASSES)))
    T[np.arange(N_BEATS), stream.y] = 1.0
    A = H.T @ (H * w[:, None]) + np.eye(N_HIDDEN) / C
    beta = np.linalg.solve(A, H.T @ (T * w[:, None]))
    scores = stream.hidden.transform(stream.probe) @ beta
    return Reference(beta, scores, platform.machine())


def save_reference(ref: Reference, path: Path) -> None:
    with path.open("wb") as f:
        np.savez(f, beta=ref.beta, scores=ref.scores, machine=np.array(ref.machine))


def load_reference(path: Path) -> Reference:
    with np.load(path) as data:
        return Reference(
            np.asarray(data["beta"], dtype=np.float64),
            np.asarray(data["scores"], dtype=np.float64),
            str(data["machine"]),
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.device.reference")
    parser.add_argument("--out", type=Path, required=True, help="where to write the .npz")
    parser.add_argument("--state", type=Path, help="also save the learner's state file here")
    args = parser.parse_args(argv)
    stream = fixed_stream()
    ref = streamed_reference(stream)
    save_reference(ref, args.out)
    if args.state is not None:
        from smfel.agent.state import save_state

        save_state(learn_stream(stream), args.state)
    print(
        f"{ref.machine}: learned {N_BEATS} beats, |beta|_max = {np.abs(ref.beta).max():.6g}, "
        f"wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
