"""Fleet simulation and evaluation on real ECG; uses agent and aggregator, never re-implements them."""

__all__: list[str] = []
