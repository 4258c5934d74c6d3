"""ECG sources, filtering, streaming QRS detection and beat features (knows nothing of learning)."""

__all__: list[str] = []
