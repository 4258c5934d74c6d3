"""The ELM hidden layer: ``h = g(x W + b)``, generated once and then carried as data.

Huang, Zhu and Siew, "Extreme learning machine: theory and applications", Neurocomputing 70
(2006). The random layer is drawn once from a seed by whoever issues the model (the aggregator);
devices receive ``W`` and ``b`` inside the signed model bundle and never regenerate them, so every
device of a federation shares exactly the same features. Feature standardisation is folded into
``W`` and ``b`` so devices apply one affine map.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from smfel.agent.codec import array_from_wire, array_to_wire, arrays_digest
from smfel.agent.errors import LearnerError

__all__ = ["ACTIVATIONS", "Activation", "HiddenLayer"]

Activation = Literal["sigmoid", "tanh"]
ACTIVATIONS: tuple[Activation, ...] = ("sigmoid", "tanh")

F64 = NDArray[np.float64]


def _sigmoid(z: F64, out: F64) -> F64:
    # 1 / (1 + exp(-z)), computed in place; exp overflow to inf gives the right limit 0.
    np.negative(z, out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)
    return out


@dataclass(frozen=True, slots=True, eq=False)
class HiddenLayer:
    """A fixed random hidden layer. ``W`` is ``(d, L)``, ``b`` is ``(L,)``, both float64.

    Build one with :meth:`generate` (issuer side) or :meth:`from_dict` (device side). The
    arrays are made read-only so a layer cannot change after its hash was taken.
    """

    W: F64
    b: F64
    activation: Activation = "sigmoid"
    content_hash: str = field(init=False)

    def __post_init__(self) -> None:
        W = np.array(self.W, dtype=np.float64, order="C", copy=True)
        b = np.array(self.b, dtype=np.float64, copy=True)
        if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1:
            raise LearnerError(f"W must be a (d, L) matrix, got shape {W.shape}")
        if b.shape != (W.shape[1],):
            raise LearnerError(f"b must have shape ({W.shape[1]},), got {b.shape}")
        if self.activation not in ACTIVATIONS:
            raise LearnerError(f"activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise LearnerError("W and b must be finite")
        W.flags.writeable = False
        b.flags.writeable = False
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "b", b)
        digest = arrays_digest({"W": W, "b": b})
        object.__setattr__(self, "content_hash", f"{digest}:{self.activation}")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def generate(
        cls,
        n_features: int,
        n_hidden: int,
        *,
        seed: int,
        activation: Activation = "sigmoid",
        scale: float = 1.0,
    ) -> HiddenLayer:
        """Draw ``W ~ U(-1, 1) * scale / sqrt(d)`` and ``b ~ U(-1, 1)`` from ``seed``.

        The ``1/sqrt(d)`` factor keeps pre-activations in the non-saturated range for
        standardised inputs whatever the number of features.
        """
        if n_features < 1 or n_hidden < 1:
            raise LearnerError("n_features and n_hidden must be positive")
        rng = np.random.default_rng(seed)
        W = rng.uniform(-1.0, 1.0, size=(n_features, n_hidden)) * (scale / np.sqrt(n_features))
        b = rng.uniform(-1.0, 1.0, size=n_hidden)
        return cls(W, b, activation)

    def with_scaling(self, mean: ArrayLike, std: ArrayLike) -> HiddenLayer:
        """A layer that takes raw features: ``g(((x - mean) / std) W + b)`` folded into W, b."""
        mu = np.asarray(mean, dtype=np.float64)
        sd = np.asarray(std, dtype=np.float64)
        if mu.shape != (self.n_features,) or sd.shape != (self.n_features,):
            raise LearnerError(f"mean and std must have shape ({self.n_features},)")
        if not (np.isfinite(sd).all() and (sd > 0).all()):
            raise LearnerError("std must be finite and positive")
        W2 = self.W / sd[:, None]
        b2 = self.b - mu @ W2
        return HiddenLayer(W2, b2, self.activation)

    # -- shape ------------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_hidden(self) -> int:
        return int(self.W.shape[1])

    # -- maths ------------------------------------------------------------------------------
    def transform_one(self, x: ArrayLike, out: F64 | None = None) -> F64:
        """``h`` for one feature vector of length ``d``; ``out`` (length L) avoids allocation."""
        xv = np.asarray(x, dtype=np.float64)
        if xv.shape != (self.n_features,):
            raise LearnerError(f"x must have shape ({self.n_features},), got {xv.shape}")
        if out is None:
            out = np.empty(self.n_hidden)
        np.dot(xv, self.W, out=out)
        out += self.b
        return self._activate(out)

    def transform(self, X: ArrayLike) -> F64:
        """``H`` (n, L) for a batch of feature vectors (n, d)."""
        Xv = np.asarray(X, dtype=np.float64)
        if Xv.ndim != 2 or Xv.shape[1] != self.n_features:
            raise LearnerError(f"X must have shape (n, {self.n_features}), got {Xv.shape}")
        Z = Xv @ self.W
        Z += self.b
        return self._activate(Z)

    def _activate(self, z: F64) -> F64:
        if self.activation == "sigmoid":
            return _sigmoid(z, z)
        return np.tanh(z, out=z)

    # -- data -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (the bundle and the wire carry this)."""
        return {
            "activation": self.activation,
            "W": array_to_wire(self.W),
            "b": array_to_wire(self.b),
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> HiddenLayer:
        """Inverse of :meth:`to_dict`; refuses a layer whose content does not match its hash."""
        try:
            layer = cls(array_from_wire(obj["W"]), array_from_wire(obj["b"]), obj["activation"])
        except (KeyError, TypeError, ValueError) as err:
            raise LearnerError(f"not a hidden layer description: {err}") from err
        expected = obj.get("content_hash")
        if expected is not None and expected != layer.content_hash:
            raise LearnerError(
                f"hidden layer content hash mismatch: stated {expected}, computed {layer.content_hash}"
            )
        return layer

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HiddenLayer) and other.content_hash == self.content_hash

    def __hash__(self) -> int:
        return hash(self.content_hash)
