"""Keep OpenBLAS single-threaded in the agent.

The agent learns one beat at a time: a rank-one RLS update on a few hundred hidden units is
microseconds of work, and OpenBLAS's worker threads waking and spinning for each call cost a
thousand times more on a small board (measured here: 15 ms instead of 0.15 ms per beat on two
shared cores). ``OPENBLAS_NUM_THREADS=1`` only works before numpy loads the library, so this
module calls ``openblas_set_num_threads`` in every OpenBLAS the process has mapped (numpy's, which
the learner calls too, and scipy's where the learner falls back to scipy's wrappers), as
threadpoolctl does, without the dependency.
"""

from __future__ import annotations

import ctypes
import logging

__all__ = ["limit_blas_threads"]

log = logging.getLogger(__name__)

_SETTERS = (
    "openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
)


def _mapped_openblas() -> list[str]:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/") and ".so" in p)


def limit_blas_threads(n: int = 1) -> int:
    """Set the thread count of every loaded OpenBLAS to ``n``; returns how many were set."""
    done = 0
    for path in _mapped_openblas():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
                setter.restype = None
                setter(n)
                done += 1
                break
    log.debug("OpenBLAS threads set to %d in %d libraries", n, done)
    return done
