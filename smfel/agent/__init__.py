"""The edge side: ELM learner, model maths, wire protocol, keys, transport, service loop."""

from smfel.agent.errors import LearnerError, SmfelError, StateFileError
from smfel.agent.hidden import ACTIVATIONS, Activation, HiddenLayer
from smfel.agent.learner import OSELM, SufficientStatistics, balanced_class_weights
from smfel.agent.state import load_state, save_state

__all__ = [
    "ACTIVATIONS",
    "OSELM",
    "Activation",
    "HiddenLayer",
    "LearnerError",
    "SmfelError",
    "StateFileError",
    "SufficientStatistics",
    "balanced_class_weights",
    "load_state",
    "save_state",
]
