"""SoftMatch (Chen et al. 2023): every pseudo-label counts, weighted by a truncated Gaussian of its confidence.

No id is dropped. The weight of an unlabeled id whose (aligned) top probability is p is 1 where p
reaches the mean μ_t of the top probabilities, and ``exp(−(p − μ_t)² / (2 σ_t² / n_sigma²))`` below
it (a Gaussian of standard deviation σ_t / ``n_sigma``, ``n_sigma`` = 2); μ_t and σ_t² are
exponential moving averages (momentum m = 0.999) of the batches' mean and unbiased variance of the
top probability, starting at 1/C and 1. Uniform alignment (UA) first rescales each prediction by u /
p̂ (u uniform, p̂ the moving average of the batches' mean prediction, starting with the first
batch's) and renormalises it, so that classes the model under-predicts weigh more. The aligned
predictions give the weights only: the targets are the top classes of the unaligned ones. The loss
is FixMatch's (:mod:`sslzoo._default_plugins.adaptive`), each id's cross-entropy scaled by its
weight.

The port follows USB's ``DistAlignEMAHook`` (uniform target) and ``SoftMatchWeightingHook``. Where
sslzoo differs: a batch of one id leaves the variance as it was (the unbiased variance of one value
is undefined; USB's would become NaN); USB's options ``per_class``, ``dist_uniform=False``
(alignment towards the labeled predictions) and soft targets are left out (the paper's defaults are
the ones kept); USB moves the averages with host numbers (``.item()``), sslzoo on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._default_plugins.adaptive import USB_2022, AdaptiveMatch, AdaptiveOptions, DistributionAlignment, Guess
from sslzoo.errors import OptionError

CHEN_2023 = ("Hao Chen, Ran Tao, Yue Fan, Yidong Wang, Jindong Wang, Bernt Schiele, Xing Xie, Bhiksha Raj, Marios "
             "Savvides. SoftMatch: Addressing the Quantity-Quality Trade-off in Semi-supervised Learning. "
             "International Conference on Learning Representations (ICLR), 2023; reference code: " + USB_2022)


@dataclass
class SoftMatchOptions(AdaptiveOptions):
    momentum: float = field(default=0.999, metadata={
        "min": 0.0, "max": 1.0, "help": "m: momentum of the moving averages (confidence mean and variance, mean "
                                        "prediction)"})
    n_sigma: float = field(default=2.0, metadata={
        "min": 0.0, "help": "the Gaussian's standard deviation is that of the confidence divided by this "
                            "(greater than 0)"})

    def __post_init__(self) -> None:
        if self.n_sigma <= 0:
            raise OptionError(f"option n_sigma={self.n_sigma} of strategy 'softmatch' is not allowed: it must be "
                              f"greater than 0")


class TruncatedGaussian:
    """SoftMatch's weighting: uniform alignment of the predictions, then a Gaussian of the top
    probability truncated at its moving mean."""

    def __init__(self, num_classes: int, momentum: float, n_sigma: float, device: torch.device) -> None:
        self.momentum, self.n_sigma = momentum, n_sigma
        self.alignment = DistributionAlignment(torch.full((num_classes,), 1.0 / num_classes, device=device), momentum)
        self.mu = torch.tensor(1.0 / num_classes, device=device)
        self.var = torch.tensor(1.0, device=device)

    def weights(self, probs: torch.Tensor) -> torch.Tensor:
        """Each prediction's weight, after moving μ and σ² towards the aligned batch."""
        confidence = self.alignment.align(probs).max(dim=-1).values  # uniform alignment
        m = self.momentum
        self.mu = m * self.mu + (1 - m) * confidence.mean()
        if confidence.numel() > 1:
            self.var = m * self.var + (1 - m) * confidence.var(unbiased=True)
        below = torch.clamp(confidence - self.mu, max=0.0)
        return torch.exp(-(below ** 2) / (2 * self.var / (self.n_sigma ** 2)))


class SoftMatch(AdaptiveMatch):
    """Chen et al. (2023): FixMatch with soft weights, a truncated Gaussian of the aligned confidence."""

    name = "softmatch"
    paper = CHEN_2023
    summary = ("FixMatch with every pseudo-label weighted by a truncated Gaussian of its confidence, after uniform "
               "alignment")
    Options = SoftMatchOptions
    weighting: TruncatedGaussian

    def start(self, ctx: Context, fresh: bool) -> None:
        """A new model starts from the initial averages."""
        if fresh:
            o = self.options
            self.weighting = TruncatedGaussian(ctx.num_classes, o.momentum, o.n_sigma, ctx.device)

    def guess(self, ctx: Context, ids: torch.Tensor, probs: torch.Tensor) -> Guess:
        """The top class of each unaligned prediction, weighted by the truncated Gaussian of the aligned one."""
        return Guess(probs.max(dim=-1).indices, self.weighting.weights(probs))


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(SoftMatch)
