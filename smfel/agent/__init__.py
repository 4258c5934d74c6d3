"""The edge side: ELM learner, model maths, wire protocol, keys, transport, service loop."""

from smfel.agent.bundle import (
    BundleError,
    Manifest,
    ModelBundle,
    bundle_from_bytes,
    bundle_to_bytes,
    load_bundle,
    write_bundle,
)
from smfel.agent.errors import LearnerError, SmfelError, StateFileError
from smfel.agent.hidden import ACTIVATIONS, Activation, HiddenLayer
from smfel.agent.learner import OSELM, SufficientStatistics, balanced_class_weights
from smfel.agent.runtime import DelegateSpec, Runtime, RuntimeStatus, open_runtime
from smfel.agent.state import load_state, save_state

__all__ = [
    "ACTIVATIONS",
    "OSELM",
    "Activation",
    "BundleError",
    "DelegateSpec",
    "HiddenLayer",
    "LearnerError",
    "Manifest",
    "ModelBundle",
    "Runtime",
    "RuntimeStatus",
    "SmfelError",
    "StateFileError",
    "SufficientStatistics",
    "balanced_class_weights",
    "bundle_from_bytes",
    "bundle_to_bytes",
    "load_bundle",
    "load_state",
    "open_runtime",
    "save_state",
    "write_bundle",
]
