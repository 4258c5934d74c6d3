"""The aggregation side: registry, verification, rounds, strategies, reputation, ledger."""

__all__: list[str] = []
