"""The README's main command: a whole federated run with nothing to configure.

By default six devices replay synthetic ECG (``synthetic://`` sources with their own heart
rates and ectopic-beat rates) for five rounds with the ``exact`` strategy, a private Mosquitto
carries the signed messages, the aggregator verifies, aggregates and records every round in its
ledger, and the global model is scored on unseen synthetic beats after each round. With
``--data DIR`` the devices replay MIT-BIH records instead (train on one set of patients, test on
others: the inter-patient protocol).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smfel.agent.model_defaults import DEFAULT_HIDDEN
from smfel.sim.run import (
    FleetSpec,
    TestSet,
    mitdb_fleet,
    mitdb_test,
    run_fleet,
    synthetic_fleet,
    synthetic_test,
)

__all__ = ["DEMO_NODES", "DEMO_TEST", "demo_setup", "run_demo"]

#: The MIT-BIH split used by ``demo --data``: DS1 records as devices and as unseen patients.
DEMO_NODES = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122")
DEMO_TEST = ("124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")


def demo_setup(
    data: str | Path | None, *, rounds: int, strategy: str, n_hidden: int, seed: int
) -> tuple[FleetSpec, TestSet]:
    params: dict[str, Any] = {"strategy": strategy, "n_hidden": n_hidden, "seed": seed}
    if data is None:
        return synthetic_fleet(6, rounds, 60.0, **params), synthetic_test(240.0, seed=seed + 98)
    return mitdb_fleet(data, DEMO_NODES, rounds, **params), mitdb_test(data, DEMO_TEST)


def run_demo(
    data: str | Path | None = None,
    *,
    rounds: int = 5,
    strategy: str = "exact",
    n_hidden: int = DEFAULT_HIDDEN,
    seed: int = 1,
    progress: Any = None,
) -> dict[str, Any]:
    spec, test = demo_setup(data, rounds=rounds, strategy=strategy, n_hidden=n_hidden, seed=seed)
    return run_fleet(spec, test, progress=progress)
