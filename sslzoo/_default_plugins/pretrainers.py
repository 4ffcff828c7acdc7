"""Built-in pretraining methods (:mod:`sslzoo._contract.pretraining`): ``simclr`` and ``simsiam``.

**SimCLR** (Chen, Kornblith, Norouzi & Hinton 2020): two random views of each input, their
embeddings through a projection head g(h) = W2 ReLU(W1 h) (the paper's MLP with one hidden layer of
the embedding's width), and the NT-Xent loss, ported from the authors' ``add_contrastive_loss``
(github.com/google-research/simclr, ``tf2/objective.py``) with ``hidden_norm=True``: the projections
L2-normalised, each view's positive its twin among the 2N - 2 others of the batch, the
cross-entropies of both directions summed and averaged over the batch (as the reference does; twice
the per-anchor mean some ports report). Defaults: the authors' CIFAR-10 run (temperature 0.5, batch
512, colour-distortion strength 0.5, no blur, weight decay 1e-4, a projection of 128). Where sslzoo
differs: Adam at 3e-4 (the optimiser of the common PyTorch port, github.com/sthalles/SimCLR) instead
of LARS at 1.0 with a warm-up, and the head of the paper rather than the v2 code's three layers with
batch norm.

**SimSiam** (Chen & He 2021): two views, a projector, a predictor, a stop-gradient and the symmetric
negative cosine, ported from the authors' ``main_simsiam.py`` and ``simsiam/builder.py``
(github.com/facebookresearch/simsiam): ``-(cos(p1, z2.detach()).mean() + cos(p2, z1.detach()).mean())
/ 2``. The projector is the paper's CIFAR-10 one, two layers (linear without bias, batch norm,
ReLU, linear without bias, batch norm without affine parameters) of ``dim`` 2048; the predictor
linear (no bias) to 512, batch norm, ReLU, linear back to 2048. Defaults: the paper's CIFAR-10
schedule (SGD, momentum 0.9, weight decay 5e-4, base lr 0.03 × batch 512 / 256 = 0.06, cosine decay,
crops of 0.2..1 of the image); each view goes through the network in a pass of its own, as in the
reference (SimCLR's code passes both views as one batch, and sslzoo's ``simclr`` does too). Where
sslzoo differs: the reference's ``--fix-pred-lr`` (a constant learning rate for the predictor, off
by default) is not ported.

Both train only what the engine hands them (:mod:`sslzoo._engine.pretraining`); the papers train for
800 to 1000 epochs, the defaults here 20, sized for a CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.pretraining import Embed, Pretrainer, PretrainOptions

CHEN_2020 = ("Ting Chen, Simon Kornblith, Mohammad Norouzi, Geoffrey Hinton. A Simple Framework for Contrastive "
             "Learning of Visual Representations. ICML 2020")
CHEN_HE_2021 = "Xinlei Chen, Kaiming He. Exploring Simple Siamese Representation Learning. CVPR 2021"
LARGE_NUM = 1e9
"""What the reference subtracts from a view's similarity with itself (``LARGE_NUM``)."""


def nt_xent(first: Tensor, second: Tensor, temperature: float) -> Tensor:
    """SimCLR's contrastive loss of the projections of two views (N, D) each, row i of both from the same
    input: the reference's ``add_contrastive_loss(hidden_norm=True)`` (see the module's docstring)."""
    first, second = F.normalize(first.float(), dim=1), F.normalize(second.float(), dim=1)
    n = first.shape[0]
    masks = torch.eye(n, device=first.device) * LARGE_NUM
    labels = torch.arange(n, device=first.device)
    logits_aa = first @ first.T / temperature - masks
    logits_bb = second @ second.T / temperature - masks
    logits_ab = first @ second.T / temperature
    logits_ba = second @ first.T / temperature
    loss_a = F.cross_entropy(torch.cat([logits_ab, logits_aa], dim=1), labels, reduction="none")
    loss_b = F.cross_entropy(torch.cat([logits_ba, logits_bb], dim=1), labels, reduction="none")
    return (loss_a + loss_b).mean()


def negative_cosine(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """SimSiam's symmetric loss: each view's prediction against the other's projection, whose gradient
    is stopped (``z.detach()``)."""
    p1, p2, z1, z2 = p1.float(), p2.float(), z1.float(), z2.float()
    return -(F.cosine_similarity(p1, z2.detach(), dim=1).mean()
             + F.cosine_similarity(p2, z1.detach(), dim=1).mean()) * 0.5


@dataclass
class SimCLROptions(PretrainOptions):
    """SimCLR's CIFAR-10 settings (see the module's docstring)."""

    batch_size: int = field(default=512, metadata={"min": 2, "help": "inputs per step (each gives two views)"})
    temperature: float = field(default=0.5, metadata={"min": 1e-6, "help": "NT-Xent's temperature"})
    projection_dim: int = field(default=128, metadata={"min": 1, "help": "the projection head's output features"})


class SimCLR(Pretrainer):
    """SimCLR: NT-Xent between the projections of two views (Chen et al. 2020)."""

    name = "simclr"
    paper = CHEN_2020
    summary = "contrastive: NT-Xent (temperature 0.5) between two views' projections, 2-layer MLP head"
    Options: ClassVar[type] = SimCLROptions
    options: SimCLROptions

    def head(self, width: int) -> nn.Module:
        return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, self.options.projection_dim))

    def loss(self, embed: Embed, head: nn.Module, first: Tensor, second: Tensor) -> Tensor:
        z = head(embed(torch.cat([first, second])))
        return nt_xent(z[:first.shape[0]], z[first.shape[0]:], self.options.temperature)


@dataclass
class SimSiamOptions(PretrainOptions):
    """SimSiam's CIFAR-10 settings (see the module's docstring)."""

    batch_size: int = field(default=512, metadata={"min": 2, "help": "inputs per step (each gives two views)"})
    optimizer: Literal["sgd", "adam"] = field(default="sgd", metadata={"help": "optimizer"})
    lr: float = field(default=0.06, metadata={"min": 0.0, "help": "learning rate (the paper's 0.03 x batch / 256)"})
    weight_decay: float = field(default=5e-4, metadata={"min": 0.0, "help": "L2 penalty"})
    schedule: Literal["constant", "cosine"] = field(default="cosine", metadata={
        "help": "the learning rate over the epochs: constant, or cosine decay to 0 (per epoch)"})
    crop_min: float = field(default=0.2, metadata={
        "min": 0.01, "max": 1.0, "help": "the smallest area of a random resized crop, as a fraction of the image"})
    dim: int = field(default=2048, metadata={"min": 1, "help": "the projector's width and output"})
    pred_dim: int = field(default=512, metadata={"min": 1, "help": "the predictor's hidden width"})


class SimSiam(Pretrainer):
    """SimSiam: a predictor against the other view's stopped projection (Chen & He 2021)."""

    name = "simsiam"
    paper = CHEN_HE_2021
    summary = "non-contrastive: predictor MLP, stop-gradient, symmetric negative cosine of two views"
    Options: ClassVar[type] = SimSiamOptions
    options: SimSiamOptions

    def head(self, width: int) -> nn.Module:
        dim, pred = self.options.dim, self.options.pred_dim
        projector = nn.Sequential(nn.Linear(width, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(),
                                  nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim, affine=False))
        predictor = nn.Sequential(nn.Linear(dim, pred, bias=False), nn.BatchNorm1d(pred), nn.ReLU(),
                                  nn.Linear(pred, dim))
        return nn.ModuleDict({"projector": projector, "predictor": predictor})

    def loss(self, embed: Embed, head: nn.Module, first: Tensor, second: Tensor) -> Tensor:
        assert isinstance(head, nn.ModuleDict)
        z1, z2 = head["projector"](embed(first)), head["projector"](embed(second))
        return negative_cosine(head["predictor"](z1), head["predictor"](z2), z1, z2)


@hookimpl
def register_pretrainers(register: Callable[[type], None]) -> None:
    register(SimCLR)
    register(SimSiam)
