"""smfel: federated on-device learning for medical sensors."""

__version__ = "0.1.0"

__all__ = ["__version__"]
