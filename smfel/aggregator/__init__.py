"""The aggregation side: registry, verification, rounds, strategies, ledger, the service.

The public names below are imported on first use, so that ``import smfel.aggregator.strategies``
stays light (no MQTT client, no ledger) for code that only aggregates.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Aggregator",
    "AggregatorConfig",
    "Limits",
    "Registry",
    "Rejected",
    "RoundResult",
    "Verifier",
    "init_model",
    "load_config",
    "make_strategy",
    "parse_enrolment",
]

_WHERE = {
    "Aggregator": "smfel.aggregator.service",
    "AggregatorConfig": "smfel.aggregator.config",
    "load_config": "smfel.aggregator.config",
    "Limits": "smfel.aggregator.pipeline",
    "Rejected": "smfel.aggregator.pipeline",
    "Verifier": "smfel.aggregator.pipeline",
    "Registry": "smfel.aggregator.registry",
    "parse_enrolment": "smfel.aggregator.registry",
    "RoundResult": "smfel.aggregator.rounds",
    "init_model": "smfel.aggregator.model",
    "make_strategy": "smfel.aggregator.strategies",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'smfel.aggregator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
