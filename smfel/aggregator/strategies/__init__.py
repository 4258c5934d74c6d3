"""Aggregation strategies, one module each behind one interface."""

__all__: list[str] = []
