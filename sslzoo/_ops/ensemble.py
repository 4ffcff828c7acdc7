"""Deep ensembles: K models of one architecture, trained together in one batched pass.

:class:`Stack` holds the K members' parameters and buffers stacked along a leading dimension
(``torch.func.stack_module_state``) and computes all K members' outputs in one call
(``torch.func.functional_call`` under ``torch.func.vmap``): a linear layer becomes one batched
matrix product, a convolution one grouped convolution. Its parameters are ordinary leaf tensors
with a gradient, held by :attr:`Stack.holder` (a module of the members' structure whose every
parameter is the stacked one), so that any ``torch.optim`` optimizer built on the holder trains
the K members at once: the optimizers sslzoo builds (SGD with momentum, Adam, AdamW, weight
decay) are elementwise, so one over the stacked parameters is K independent ones, and the
gradient of the sum of the members' losses is each member's own gradient.

Dropout in a member's forward pass draws independent masks per member (``vmap``'s
``randomness="different"``) from torch's global generator. A model whose forward pass ``vmap``
cannot batch (a data-dependent Python branch, an in-place update of a buffer) is trained one
member after the other instead (:func:`batchable` says which).

:class:`Ensemble` is what a strategy gets (``ctx.ensemble``): the K trained members and their
class probabilities for pool ids, (k, C, K), the layout of MC-dropout's (k, C, T), so that the K
members take the place of the T dropout passes (Beluch et al. 2018).

Reference: Lakshminarayanan, B., Pritzel, A. & Blundell, C. (2017). Simple and Scalable Predictive
Uncertainty Estimation using Deep Ensembles. Advances in Neural Information Processing Systems 30
(NeurIPS 2017), 6402–6413.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from sslzoo._ops import inference
from sslzoo._ops.inference import Precision


class Stack:
    """K models of one structure as one: stacked parameters (leading dimension K) and a batched forward."""

    def __init__(self, models: list[nn.Module]) -> None:
        params, buffers = stack_module_state(models)
        self.k = len(models)
        self.skeleton = copy.deepcopy(models[0]).to("meta")  # the structure; functional_call supplies the tensors
        self.holder = copy.deepcopy(models[0])
        for name, value in params.items():
            owner, _, leaf = name.rpartition(".")
            setattr(self.holder.get_submodule(owner), leaf, nn.Parameter(value.detach()))
        for name, value in buffers.items():
            owner, _, leaf = name.rpartition(".")
            self.holder.get_submodule(owner)._buffers[leaf] = value
        self.params = dict(self.holder.named_parameters())
        self.buffers = dict(self.holder.named_buffers())

    def train(self, mode: bool = True) -> None:
        """Training mode (dropout on) or evaluation mode for every member."""
        self.skeleton.train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The K members' outputs (K, B, C) for ``x`` (K, B, ...): member k computes ``x[k]``."""
        def member(params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor], inputs: torch.Tensor) \
                -> torch.Tensor:
            return functional_call(self.skeleton, (dict(params), dict(buffers)), (inputs,))

        return vmap(member, randomness="different")(self.params, self.buffers, x)

    @torch.no_grad()
    def unstack(self, models: list[nn.Module]) -> None:
        """Copy member k's trained parameters and buffers into ``models[k]``."""
        for k, model in enumerate(models):
            for name, param in model.named_parameters():
                param.copy_(self.params[name][k])
            for name, buffer in model.named_buffers():
                if name in self.buffers:
                    buffer.copy_(self.buffers[name][k])


def batchable(models: list[nn.Module], x: torch.Tensor) -> bool:
    """Whether :class:`Stack` computes these models' forward and backward passes, tried on two
    samples of ``x`` in training mode (on copies: the models are left as they were)."""
    stack = Stack([copy.deepcopy(m) for m in models])
    stack.train()
    try:
        probe = x[:2].unsqueeze(0).expand(stack.k, *x[:2].shape)
        stack.forward(probe).float().sum().backward()
    except (RuntimeError, NotImplementedError, ValueError):
        return False
    return True


class Ensemble:
    """The K trained members of a deep ensemble (or a query-by-committee) and their predictions.

    ``members`` are the K models (evaluation mode when asked for predictions); ``batched`` says
    whether they were trained in one batched pass (:class:`Stack`) or one after the other.
    """

    def __init__(self, members: list[nn.Module], x: torch.Tensor, batched: bool, precision: Precision = "auto") -> None:
        self.members, self.x, self.batched, self.precision = members, x, batched, precision

    def __len__(self) -> int:
        return len(self.members)

    def probabilities(self, ids: torch.Tensor) -> torch.Tensor:
        """Class probabilities (k, C, K) of the K members for ``ids``, dropout off, no gradient:
        the layout of MC-dropout's passes (:func:`sslzoo._ops.inference.mc_probabilities`)."""
        probs = [inference.probabilities(m, self.x, ids, precision=self.precision) for m in self.members]
        if ids.numel() == 0:
            return torch.empty(0, 0, len(self.members), device=self.x.device)
        return torch.stack(probs, dim=2)
