"""The prefix that a step's pseudo-label forward and its training forward share.

Pseudo-labels are the model's predictions with dropout off (eval mode) and the loss is computed
in train mode, so the two forward passes of a pseudo-labeling step differ; but only from the
first layer whose output depends on the mode (dropout, batch norm, ...). The layers before it
compute the same in both modes; in ``cnn`` they are both convolutions, most of a forward pass.
When a step trains on exactly the unlabeled batch that it pseudo-labels (the unlabeled-only
steps of pseudo-label's ``schedule=step``), the engine runs those layers once, with the gradient
on: the eval-mode rest of the model gives the pseudo-labels, the train-mode rest the loss. The
numbers are those of two separate forward passes, bit for bit (``tests/test_prefix.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from sslzoo.inference import Precision, autocast, eval_mode, sequential_layers

#: layers whose output does not depend on the mode (the exact type: a subclass may override forward)
MODE_FREE: frozenset[type[nn.Module]] = frozenset({
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus,
})


def mode_free_layers(model: nn.Module) -> int:
    """How many leading layers of a model whose forward is exactly ``nn.Sequential``'s
    (:func:`sslzoo.inference.sequential_layers`) compute the same in train and eval mode (0 otherwise)."""
    layers = sequential_layers(model)
    if layers is None:
        return 0
    for i, layer in enumerate(layers):
        if type(layer) not in MODE_FREE:
            return i
    return len(layers)


class SharedPrefix:
    """One step's shared prefix: armed with the ids the step will train on alone, computed by the
    first prediction for exactly those ids, taken by the training forward, released every step."""

    def __init__(self, model: nn.Module, precision: Precision) -> None:
        n = mode_free_layers(model)
        layers = (sequential_layers(model) or []) if n else []  # plain Sequentials: slicing a subclass makes one
        self.prefix: nn.Module | None = nn.Sequential(*layers[:n]) if n else None  # None: nothing to share
        self.rest: nn.Module = nn.Sequential(*layers[n:]) if n else model
        self.precision = precision
        self.release()

    def release(self) -> None:
        """Forget the step's batch and its prefix (and the autograd graph behind it)."""
        self.ids: torch.Tensor | None = None
        self.source: torch.Tensor | None = None
        self.x: torch.Tensor | None = None
        self.h: torch.Tensor | None = None
        self.version = -1

    def arm(self, source: torch.Tensor, ids: torch.Tensor) -> None:
        """The coming step trains on ``source[ids]`` alone: a prediction for ``ids`` may share its prefix."""
        self.release()
        if self.prefix is not None:
            self.ids, self.source = ids, source

    def inputs(self, source: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``source[ids]``: the very tensor the shared prefix was computed on, when it was."""
        return self.x if self.x is not None and ids is self.ids and source is self.source else source[ids]

    def probabilities(self, ids: torch.Tensor) -> torch.Tensor | None:
        """Eval-mode softmax (k, C) for ``ids`` through the shared prefix, without gradient; None
        unless the step is armed with ``ids`` (the same tensor)."""
        if self.ids is None or ids is not self.ids or self.prefix is None:
            return None
        device = ids.device
        if self.h is None:
            assert self.source is not None
            self.x = self.source[ids]
            self.version = self.x._version
            with torch.enable_grad(), autocast(device, self.precision):
                self.h = self.prefix(self.x)
        with torch.no_grad(), eval_mode(self.rest), autocast(device, self.precision):
            return torch.softmax(self.rest(self.h.detach()).float(), dim=1)

    def logits(self, x: torch.Tensor | None) -> torch.Tensor | None:
        """Train-mode logits of ``x`` from the shared prefix when ``x`` is the tensor it was computed
        on, unchanged (call under the training autocast); None otherwise. Releases the step either way."""
        h, same = self.h, x is not None and self.x is x and x._version == self.version
        self.release()
        return self.rest(h) if h is not None and same else None
