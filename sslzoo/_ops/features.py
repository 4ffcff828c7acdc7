"""Feature maps fitted on the training data: the conventional-ML pipelines as model layers.

A :class:`FittedFeatures` layer inside a model is fitted by the engine whenever it builds a fresh
model (round 0, and every round with ``retrain="scratch"``) on that round's training inputs, the
oracle-labeled and pseudo-labeled samples, never the test set or the rest of the pool: the
same data a scikit-learn ``Pipeline.fit`` would see. With the training option
``fit_features="initial_labels"`` it is fitted on the initial labeled set only, every round the
same fit (a pipeline fitted once before self-training starts).

A fitted layer has no parameters to train, so its outputs depend only on its fit: the engine
computes them once per fit for every training and test input (:func:`tabulate`; once per run with
``fit_features="initial_labels"``) and trains the layers after them on those features, instead of
recomputing them for every batch. The strategy then sees the features as ``ctx.x`` and the layers
after them as ``ctx.model``.
"""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import nn

from sslzoo._ops.inference import sequential_layers
from sslzoo._ops.prefix import MODE_FREE
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
    ``1 + k + k(k+1)/2`` outputs, 1326 for k = 50.

    With ``standardize`` the polynomial features are then centred and scaled to unit variance on
    the same training inputs, fitted together with the PCA (scikit-learn's ``StandardScaler`` after
    ``PolynomialFeatures``: a constant feature, such as the leading 1, becomes 0). Unscaled, the
    squares and products of the components span orders of magnitude and SGD on them converges
    slowly; the source pipeline has no such step (its ``SGDClassifier`` runs on the unscaled
    features)."""

    mean: torch.Tensor  # buffers (register_buffer)
    axes: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, in_features: int, components: int = 50, standardize: bool = False) -> None:
        super().__init__()
        self.components, self.standardize = components, standardize
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("axes", torch.zeros(in_features, components))
        rows, cols = torch.triu_indices(components, components)
        self.register_buffer("rows", rows)
        self.register_buffer("cols", cols)
        self.register_buffer("shift", torch.zeros(self.out_features))
        self.register_buffer("scale", torch.ones(self.out_features))

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
        if self.standardize:
            features = self._polynomial(x).double()
            std = features.std(0, unbiased=False)
            self.shift.copy_(features.mean(0).float())
            self.scale.copy_(torch.where(std > 0, std, torch.ones_like(std)).float())

    def _polynomial(self, x: torch.Tensor) -> torch.Tensor:
        z = (self._normalised(x) - self.mean) @ self.axes
        ones = torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)
        return torch.cat([ones, z, z.index_select(1, self.rows) * z.index_select(1, self.cols)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self._polynomial(x)
        return (features - self.shift) / self.scale if self.standardize else features


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
        for i, layer in enumerate(layers[:fitted[-1] + 1]):
            if isinstance(layer, FittedFeatures):
                layer.fit(x)
            if i < fitted[-1]:  # the last fitted layer's outputs are not needed to fit
                x = layer(x)


#: Inputs a fitted prefix transforms at a time (:func:`tabulate`): bounds the memory of the intermediates.
TABULATE_CHUNK = 8192


def fitted_depth(model: nn.Module) -> int:
    """How many leading layers of ``model`` end with its last :class:`FittedFeatures` layer, when
    they hold nothing to train (no parameter) and compute the same in train and eval mode, so that
    their outputs can be computed once per fit (0: none, or not so)."""
    layers = sequential_layers(model) or []
    fitted = [i for i, layer in enumerate(layers) if isinstance(layer, FittedFeatures)]
    if not fitted:
        return 0
    prefix = layers[:fitted[-1] + 1]
    fixed = all(isinstance(layer, FittedFeatures) or type(layer) in MODE_FREE for layer in prefix)
    return len(prefix) if fixed and not any(p.numel() for layer in prefix for p in layer.parameters()) else 0


def tabulate(prefix: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The outputs of the fitted ``prefix`` for every input of ``x``, in chunks, without gradient."""
    with torch.no_grad():
        return torch.cat([prefix(chunk) for chunk in x.split(TABULATE_CHUNK)]) if x.shape[0] else prefix(x)
