"""Virtual adversarial training (Miyato et al. 2018): smooth the model where it is most sensitive.

For each unlabeled input x with prediction p = p(y | x), VAT finds the direction in which a small
perturbation changes the prediction most, by ``power_iterations`` (1) steps of the power method on
the KL divergence: from a random unit vector d,

    d ← normalize(∇_r KL(p || p(y | x + r)) at r = xi · d)

and the virtual adversarial perturbation is r_adv = eps · d (its L2 norm per sample is ``eps``).
The loss is

    CE(labeled) + alpha · KL(p || p(y | x + r_adv))  [+ H(p(y | x)) with ``entmin``: VAT+EntMin]

where the KL's gradient flows only through the perturbed prediction (p is a constant), and the
optional conditional entropy of the unlabeled batch's training predictions is that of the paper's
section 4.3. The random directions come from the run's generator.

The prediction p, the power iteration and the perturbed prediction all use the model with dropout
off (batch norm on its running statistics): the distribution VAT smooths is the one evaluated, the
power iteration is not swamped by dropout noise, and no batch statistics are updated by the
perturbed inputs. For a model without dropout or batch norm (the paper's) this is the paper's
computation. Defaults: the paper's xi = 1e-6, eps = 8.0 (its CIFAR-10 value; 0.3 for MNIST
pixels in [0, 1]), one power iteration, alpha = 1, unlabeled batches of 128. In float32, xi = 1e-6
moves inputs of magnitude 1 by less than their rounding step in most pixels; a larger xi (e.g.
1e-1 of the inputs' scale) finds the direction reliably there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import Step, StepLoss, TrainOptions, weighted_cross_entropy
from sslzoo._ops.inference import eval_mode
from sslzoo._strategies.consistency import Consistency, pseudo_labels
from sslzoo.errors import OptionError

MIYATO_2018 = ("Takeru Miyato, Shin-ichi Maeda, Masanori Koyama, Shin Ishii. Virtual Adversarial Training: A "
               "Regularization Method for Supervised and Semi-Supervised Learning. IEEE Transactions on Pattern "
               "Analysis and Machine Intelligence 41(8):1979-1993, 2018.")


@dataclass
class VatOptions(TrainOptions):
    unlabeled_batch_size: int = field(default=128, metadata={"min": 1, "help": "unlabeled ids per step"})
    eps: float = field(default=8.0, metadata={"min": 0.0, "help": "L2 norm of the virtual adversarial perturbation"})
    xi: float = field(default=1e-6, metadata={
        "min": 0.0, "help": "length of the finite-difference step of the power iteration (greater than 0)"})
    power_iterations: int = field(default=1, metadata={"min": 1, "help": "power-iteration steps"})
    alpha: float = field(default=1.0, metadata={"min": 0.0, "help": "weight of the virtual adversarial loss"})
    entmin: bool = field(default=False, metadata={
        "help": "add the conditional entropy of the unlabeled predictions (VAT+EntMin)"})

    def __post_init__(self) -> None:
        if self.xi <= 0:
            raise OptionError(f"option xi={self.xi} of strategy 'vat' is not allowed: it must be greater than 0 "
                              f"(the finite-difference step of the power iteration)")


def unit_vectors(d: torch.Tensor) -> torch.Tensor:
    """Each sample of ``d`` scaled to L2 norm 1 (scaled by its largest entry first, as the paper's code,
    so that tiny gradients do not underflow)."""
    tiny = torch.finfo(d.dtype).tiny
    flat = d.flatten(1)
    flat = flat / flat.abs().amax(dim=1, keepdim=True).clamp_min(tiny)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(tiny)
    return flat.view_as(d)


def kl_divergence(p: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over the samples of KL(p || softmax(logits))."""
    log_q = torch.log_softmax(logits.float(), dim=1)
    return (torch.special.xlogy(p, p) - p * log_q).sum(dim=1).mean()


def conditional_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over the samples of the entropy of softmax(logits)."""
    log_p = torch.log_softmax(logits.float(), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def virtual_adversarial_perturbation(model: nn.Module, x: torch.Tensor, p: torch.Tensor, xi: float, eps: float,
                                     iterations: int, generator: torch.Generator) -> torch.Tensor:
    """r_adv (same shape as ``x``) of L2 norm ``eps`` per sample: ``iterations`` power-iteration steps
    from a random direction, each the normalized gradient of KL(p || model(x + xi·d)) in d. The model's
    parameters get no gradient."""
    d = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x = x.detach()
    for _ in range(iterations):
        d = (xi * unit_vectors(d)).requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(kl_divergence(p, model(x + d)), [d])
        d = grad.detach()
    return eps * unit_vectors(d)


class Vat(Consistency):
    """Miyato et al. (2018): KL between the prediction and the prediction under its virtual
    adversarial perturbation."""

    name = "vat"
    paper = MIYATO_2018
    summary = ("virtual adversarial perturbation by power iteration (xi, eps), KL consistency, optional entropy "
               "minimisation")
    Options = VatOptions

    def loss(self, ctx: Context, step: Step) -> torch.Tensor | StepLoss:
        """``CE(labeled) + alpha · KL(p || p(x + r_adv))`` (+ the entropy of the unlabeled predictions),
        p the model's prediction on the unlabeled batch (dropout off, no gradient)."""
        labeled, unlabeled = step.labeled, step.unlabeled
        if unlabeled is None:
            return weighted_cross_entropy(ctx.model(labeled.x), labeled.targets, labeled.weights, ctx.activation)
        o = self.options
        p = ctx.predict(unlabeled)
        x = ctx.x[unlabeled]
        logits = ctx.model(torch.cat([labeled.x, x]))
        n = labeled.ids.numel()
        loss = weighted_cross_entropy(logits[:n], labeled.targets, labeled.weights, ctx.activation)
        with eval_mode(ctx.model):
            r_adv = virtual_adversarial_perturbation(ctx.model, x, p, o.xi, o.eps, o.power_iterations, ctx.generator)
            loss = loss + o.alpha * kl_divergence(p, ctx.model(x + r_adv))
        if o.entmin:
            loss = loss + conditional_entropy(logits[n:])
        return StepLoss(loss, pseudo_labels(unlabeled, p))


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(Vat)
