"""Embeddings of a model: its penultimate features and the gradient embedding of its last layer.

**Which layer.** A model's *embedding layer* is its last ``nn.Linear`` (the last one in
``model.named_modules()`` order, which is the order of the layers of an ``nn.Sequential``) unless
the model names another module in an ``embedding_layer`` attribute, a string as
``named_modules()`` spells it (``model.embedding_layer = "head.fc"``). The *embedding* of an input
is the input of that layer: for every built-in model, the features the output layer sees (the
150 ReLU units of ``cnn``, the 128 of ``gal_cnn``, the flattened pixels of ``linear``, the 1326
polynomial features of ``pca_poly_logreg``).

**Gradient embedding** (Ash et al. 2020, BADGE): the gradient of the loss with respect to the
embedding layer's weight, for the label the model predicts (the argmax), one per sample. For a
layer ``z = W h + b`` it is the outer product ``a ⊗ h`` with ``a = ∂loss/∂z``: for a softmax model
with cross-entropy at the logits ``a = p - onehot(argmax p)``; for a sigmoid-output model (one
binary cross-entropy per class, see :func:`sslzoo._ops.inference.output_activation`) ``a = σ(z) -
onehot(argmax z)``. When layers follow the embedding layer (a ReLU on the logits, a declared
layer deeper inside), ``a`` is that output gradient carried back through them by one
vector-Jacobian product per chunk, which is exact per sample because evaluation mode computes
every sample on its own. No per-sample backward loop. :class:`GradientEmbedding` keeps the two
factors (``a``: N × C, ``h``: N × D) and computes inner products and distances from them
(``<g_i, g_j> = (a_i · a_j)(h_i · h_j)``), so the N × C·D matrix exists only if asked for.

Reference: Ash, J. T., Zhang, C., Krishnamurthy, A., Langford, J. & Agarwal, A. (2020). Deep
Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds. ICLR 2020.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslzoo._ops.inference import CHUNK, Precision, autocast, chunk_rows, eval_mode, output_activation
from sslzoo._ops.rows import sq_norms
from sslzoo.errors import TrainingError

__all__ = ["GradientEmbedding", "embedding_layer", "embeddings", "gradient_embeddings"]


def embedding_layer(model: nn.Module) -> nn.Module:
    """The module whose input is ``model``'s embedding: the one its ``embedding_layer`` attribute
    names, or else its last ``nn.Linear``."""
    name = getattr(model, "embedding_layer", None)
    modules = dict(model.named_modules())
    if name is not None:
        if not isinstance(name, str) or name not in modules:
            raise TrainingError(f"{type(model).__name__} declares embedding_layer={name!r}, which names none of its "
                                f"modules (a name from model.named_modules(), e.g. {list(modules)[-1]!r})")
        return modules[name]
    linear = [m for m in modules.values() if isinstance(m, nn.Linear)]
    if not linear:
        raise TrainingError(f"{type(model).__name__} has no nn.Linear layer whose input could be its embedding; "
                            f"name the embedding layer in its embedding_layer attribute")
    return linear[-1]


@contextlib.contextmanager
def _captured(layer: nn.Module, detach_output: bool = False) -> Iterator[dict[str, Tensor]]:
    """While active, ``seen["h"]`` is the input of ``layer``'s latest call and ``seen["z"]`` its output
    (with ``detach_output``, a leaf that requires grad, which the rest of the model then uses)."""
    seen: dict[str, Tensor] = {}

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor | None:
        seen["h"] = args[0]
        if detach_output:
            seen["z"] = output.detach().requires_grad_()
            return seen["z"]
        return None

    handle = layer.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def embeddings(model: nn.Module, x: Tensor, ids: Tensor, grad_free: str = "inference", chunk: int = CHUNK,
               precision: Precision = "auto") -> Tensor:
    """Embeddings (k, D) of ``x[ids]`` (float32, on ``x``'s device): the input of
    :func:`embedding_layer`, dropout off, at most ``chunk`` samples at a time
    (:func:`~sslzoo._ops.inference.chunk_rows`). ``grad_free``: "inference" (``torch.inference_mode``)
    or "no_grad"."""
    layer = embedding_layer(model)
    chunk = chunk_rows(x, chunk)
    out = []
    guard = torch.inference_mode() if grad_free == "inference" else torch.no_grad()
    with guard, eval_mode(model), autocast(x.device, precision), _captured(layer) as seen:
        for start in range(0, ids.numel(), chunk):
            model(x[ids[start:start + chunk]])
            out.append(seen["h"].flatten(1).float())
    if not out:
        with guard:
            return torch.empty(0, 0, device=x.device)
    return torch.cat(out)


@dataclass
class GradientEmbedding:
    """Per-sample gradients of the loss w.r.t. a linear layer's weight, kept as factors: sample i's
    gradient is ``outer(a[i], h[i])`` (C × D, flattened row-major to C·D)."""

    a: Tensor  # (N, C): the loss gradient at the layer's output
    h: Tensor  # (N, D): the layer's input
    _sq_norms: Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def dense(self) -> Tensor:
        """The gradients as one (N, C·D) matrix (``a[i, c] * h[i, d]`` at column ``c·D + d``)."""
        return (self.a.unsqueeze(2) * self.h.unsqueeze(1)).flatten(1)

    def sq_norms(self) -> Tensor:
        """``|g_i|²`` (N,) = ``|a_i|² |h_i|²``, computed once (k-means++ seeding asks for them at every pick)."""
        if self._sq_norms is None:
            self._sq_norms = sq_norms(self.a) * sq_norms(self.h)
        return self._sq_norms

    def inner(self, rows: Tensor) -> Tensor:
        """``<g_i, g_j>`` (N, len(rows)) of every sample i with the samples at positions ``rows``."""
        return (self.a @ self.a[rows].T) * (self.h @ self.h[rows].T)

    def sq_distances(self, rows: Tensor) -> Tensor:
        """``|g_i - g_j|²`` (N, len(rows)) of every sample i to the samples at positions ``rows``,
        never negative."""
        norms = self.sq_norms()
        return (norms.unsqueeze(1) + norms[rows].unsqueeze(0) - 2.0 * self.inner(rows)).clamp_min(0.0)


def output_gradient(logits: Tensor, activation: str) -> Tensor:
    """``∂loss/∂logits`` (N, C) for the predicted labels (argmax): ``softmax - onehot`` for
    cross-entropy, ``sigmoid - onehot`` for one binary cross-entropy per class."""
    logits = logits.float()
    onehot = F.one_hot(logits.argmax(1), logits.shape[1]).to(logits.dtype)
    scores = torch.sigmoid(logits) if activation == "sigmoid" else torch.softmax(logits, dim=1)
    return scores - onehot


def gradient_embeddings(model: nn.Module, x: Tensor, ids: Tensor, chunk: int = CHUNK,
                        precision: Precision = "auto") -> GradientEmbedding:
    """The gradient embedding of ``x[ids]`` at :func:`embedding_layer` (an ``nn.Linear``), for the
    labels the model predicts, factored (see the module docstring). Evaluation mode (dropout off);
    no parameter gradient is computed or touched; one vector-Jacobian product per chunk only when
    layers follow the embedding layer."""
    layer = embedding_layer(model)
    if not isinstance(layer, nn.Linear):
        raise TrainingError(f"the gradient embedding is the gradient of a linear layer's weight, but "
                            f"{type(model).__name__}'s embedding layer is a {type(layer).__name__}")
    activation = output_activation(model)
    chunk = chunk_rows(x, chunk)
    params = [p for p in model.parameters() if p.requires_grad]
    a_parts, h_parts = [], []
    try:
        for p in params:  # the prefix records no graph: only the layers after the embedding layer do
            p.requires_grad_(False)
        with torch.enable_grad(), eval_mode(model), autocast(x.device, precision), \
                _captured(layer, detach_output=True) as seen:
            for start in range(0, ids.numel(), chunk):
                logits = model(x[ids[start:start + chunk]])
                a = output_gradient(logits.detach(), activation)
                z = seen["z"]
                if logits is not z:
                    (a,) = torch.autograd.grad(logits, z, grad_outputs=a.to(logits.dtype))
                a_parts.append(a.detach().float())
                h_parts.append(seen["h"].detach().flatten(1).float())
    finally:
        for p in params:
            p.requires_grad_(True)
    if not a_parts:
        empty = torch.empty(0, 0, device=x.device)
        return GradientEmbedding(empty, empty)
    return GradientEmbedding(torch.cat(a_parts), torch.cat(h_parts))
