"""Feature maps fitted on the training data: the conventional-ML pipelines as model layers.

A :class:`FittedFeatures` layer inside a model is fitted by the engine whenever it builds a fresh
model (round 0, and every round with ``retrain="scratch"``) on that round's training inputs, the
oracle-labeled and pseudo-labeled samples, never the test set or the rest of the pool: the
same data a scikit-learn ``Pipeline.fit`` would see. With the training option
``fit_features="initial_labels"`` it is fitted on the initial labeled set only, every round the
same fit (a pipeline fitted once before self-training starts).
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import nn

from sslzoo.errors import TrainingError


class FittedFeatures(nn.Module, abc.ABC):
    """A layer with a data-dependent state, set by :meth:`fit` before training."""

    @abc.abstractmethod
    def fit(self, x: torch.Tensor) -> None:
        """Set the layer's state from the training inputs ``x``."""


class PcaPolynomial(FittedFeatures):
    """Each input flattened and L2-normalised, projected on the training set's top ``components``
    principal axes (centred, as scikit-learn's ``PCA``), then expanded to the degree-2 polynomial
    features ``1, z_i, z_i z_j (i <= j)`` (scikit-learn's ``PolynomialFeatures(2)``):
    ``1 + k + k(k+1)/2`` outputs, 1326 for k = 50."""

    mean: torch.Tensor  # buffers (register_buffer)
    axes: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor

    def __init__(self, in_features: int, components: int = 50) -> None:
        super().__init__()
        self.components = components
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("axes", torch.zeros(in_features, components))
        rows, cols = torch.triu_indices(components, components)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)

    @property
    def out_features(self) -> int:
        return 1 + self.components + self.rows.numel()

    @staticmethod
    def _normalised(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.flatten(1).float(), dim=1)

    def fit(self, x: torch.Tensor) -> None:
        """The principal axes of ``x`` (at least ``components`` samples), by an eigendecomposition of
        its covariance in float64."""
        if x.shape[0] < self.components:
            raise TrainingError(f"PCA to {self.components} components needs at least that many training "
                                f"samples, got {x.shape[0]}")
        z = self._normalised(x).double()
        mean = z.mean(0)
        centred = z - mean
        _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        self.mean.copy_(mean.float())
        self.axes.copy_(vectors[:, -self.components:].flip(1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self._normalised(x) - self.mean) @ self.axes
        ones = torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)
        return torch.cat([ones, z, z[:, self.rows] * z[:, self.cols]], dim=1)


def fit_features(model: nn.Module, x: torch.Tensor) -> None:
    """Fit every :class:`FittedFeatures` layer of ``model`` on ``x``, in order: a later layer sees
    the outputs of the (fitted) layers before it in a ``Sequential``."""
    nested = sum(isinstance(m, FittedFeatures) for m in model.modules())
    if nested == 0:
        return
    layers = list(model) if isinstance(model, nn.Sequential) else []
    fitted = [i for i, layer in enumerate(layers) if isinstance(layer, FittedFeatures)]
    if len(fitted) != nested:
        raise TrainingError(f"fitted feature layers must be direct layers of an nn.Sequential model; "
                            f"{type(model).__name__} holds one elsewhere")
    with torch.no_grad():
        for layer in layers[:fitted[-1] + 1]:
            if isinstance(layer, FittedFeatures):
                layer.fit(x)
            x = layer(x)
