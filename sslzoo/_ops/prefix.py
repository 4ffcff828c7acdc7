"""The prefix that a pseudo-labeling step's two forward passes share.

Pseudo-labels are the model's predictions with dropout off (eval mode) and the loss is computed
in train mode, so the two forward passes of a pseudo-labeling step differ; but only from the
first layer whose output depends on the mode (dropout, batch norm, ...). The layers before it
compute the same in both modes; in ``cnn`` they are both convolutions, most of a forward pass.
When a step trains on exactly the unlabeled batch that it pseudo-labels (the unlabeled-only
steps of pseudo-label's ``schedule=step``), the strategy runs those layers once, with the gradient
on (:class:`SharedPrefix`): the eval-mode rest of the model gives the pseudo-labels, the train-mode
rest the loss. The numbers are those of two separate forward passes, bit for bit
(``tests/test_prefix.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from sslzoo._ops.inference import Precision, autocast, eval_mode, sequential_layers

#: layers whose output does not depend on the mode (the exact type: a subclass may override forward)
MODE_FREE: frozenset[type[nn.Module]] = frozenset({
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Flatten, nn.Unflatten, nn.Identity,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Softplus,
})


def mode_free_layers(model: nn.Module) -> int:
    """How many leading layers of a model whose forward is exactly ``nn.Sequential``'s
    (:func:`sslzoo._ops.inference.sequential_layers`) compute the same in train and eval mode (0 otherwise)."""
    layers = sequential_layers(model)
    if layers is None:
        return 0
    for i, layer in enumerate(layers):
        if type(layer) not in MODE_FREE:
            return i
    return len(layers)


class SharedPrefix:
    """The two forward passes of one batch: :meth:`probabilities` (eval mode, no gradient) computes the
    model's mode-free layers once, with the gradient on, and :meth:`logits` (train mode) continues from
    them. ``shares`` is False for a model with no mode-free leading layers (nothing to share)."""

    def __init__(self, model: nn.Module, precision: Precision) -> None:
        n = mode_free_layers(model)
        layers = (sequential_layers(model) or []) if n else []  # plain Sequentials: slicing a subclass makes one
        self.prefix: nn.Module | None = nn.Sequential(*layers[:n]) if n else None
        self.rest: nn.Module = nn.Sequential(*layers[n:]) if n else model
        self.precision = precision
        self.h: torch.Tensor | None = None

    @property
    def shares(self) -> bool:
        return self.prefix is not None

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode softmax (k, C) of the batch ``x``, without gradient, through the shared prefix
        (computed here, with the gradient on, for :meth:`logits`)."""
        assert self.prefix is not None, "nothing to share: check shares first"
        with torch.enable_grad(), autocast(x.device, self.precision):
            self.h = self.prefix(x)
        with torch.no_grad(), eval_mode(self.rest), autocast(x.device, self.precision):
            return torch.softmax(self.rest(self.h.detach()).float(), dim=1)

    def logits(self) -> torch.Tensor:
        """Train-mode logits of the batch :meth:`probabilities` saw, from its prefix (call under the
        training autocast)."""
        assert self.h is not None, "call probabilities first"
        return self.rest(self.h)
