"""FreeMatch (Wang et al. 2023): self-adaptive thresholds and the self-adaptive fairness term.

Self-adaptive thresholding (SAT): the global threshold τ_t is an exponential moving average
(momentum λ = 0.999) of the mean top probability of the unlabeled batches, starting at 1/C;
the local one scales it per class by the moving average p̃_t(c) of the predicted probability of c,
divided by the largest: ``τ_t(c) = MaxNorm(p̃_t)(c) · τ_t``. An unlabeled id whose weak
view's top class is c is kept when its probability reaches τ_t(c); the averages are updated with
the batch before the mask is taken. The loss is FixMatch's (:mod:`sslzoo._default_plugins.adaptive`)
plus ``lambda_f`` (0.01) times the self-adaptive fairness term (SAF) on the kept ids'
strong views: ``Σ_c SumNorm(p̃/h̃)(c) · log SumNorm(p̄/h̄)(c)``, with h̃ the moving average of the
batches' histograms of predicted classes, p̄ and h̄ the mean prediction and the class histogram of
the kept strong views (a class of h̄ that is 0 contributes 0), as USB computes it.

The port follows USB's ``FreeMatchThresholingHook`` and ``entropy_loss``. Where sslzoo differs:
USB's options ``use_quantile`` and ``clip_thresh`` (not in the paper, off by default) and soft
targets (``hard_label=False``) are left out. The fairness weight is USB's default; its CIFAR-10
configuration with 40 labels uses 0.001.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._default_plugins.adaptive import USB_2022, AdaptiveMatch, AdaptiveOptions, Guess

WANG_2023 = ("Yidong Wang, Hao Chen, Qiang Heng, Wenxin Hou, Yue Fan, Zhen Wu, Jindong Wang, Marios Savvides, "
             "Takahiro Shinozaki, Bhiksha Raj, Bernt Schiele, Xing Xie. FreeMatch: Self-adaptive Thresholding for "
             "Semi-supervised Learning. International Conference on Learning Representations (ICLR), 2023; "
             "reference code: " + USB_2022)


@dataclass
class FreeMatchOptions(AdaptiveOptions):
    momentum: float = field(default=0.999, metadata={
        "min": 0.0, "max": 1.0, "help": "lambda: momentum of the moving averages behind the thresholds"})
    lambda_f: float = field(default=0.01, metadata={"min": 0.0, "help": "weight of the self-adaptive fairness term"})


class SelfAdaptiveThreshold:
    """The moving averages of FreeMatch: the global threshold τ (mean top probability), the mean
    prediction p̃ and the histogram of predicted classes h̃, each starting uniform (1/C)."""

    def __init__(self, num_classes: int, momentum: float, device: torch.device) -> None:
        self.momentum = momentum
        self.p_model = torch.full((num_classes,), 1.0 / num_classes, device=device)
        self.label_hist = torch.full((num_classes,), 1.0 / num_classes, device=device)
        self.time_p = self.p_model.mean()

    def update(self, probs: torch.Tensor) -> None:
        """Move the averages towards the batch of predictions ``probs``."""
        m = self.momentum
        confidence, classes = probs.max(dim=-1)
        self.time_p = self.time_p * m + (1 - m) * confidence.mean()
        self.p_model = self.p_model * m + (1 - m) * probs.mean(dim=0)
        hist = torch.bincount(classes, minlength=self.p_model.numel()).to(self.p_model.dtype)
        self.label_hist = self.label_hist * m + (1 - m) * (hist / hist.sum())

    def mask(self, probs: torch.Tensor) -> torch.Tensor:
        """Update with ``probs``, then which of them reach their class's threshold ``MaxNorm(p̃)(c) · τ``."""
        self.update(probs)
        confidence, classes = probs.max(dim=-1)
        scale = self.p_model / self.p_model.max()
        return confidence >= self.time_p * scale[classes]


def _sum_norm(p: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``p / counts`` (0 where a count is 0), normalised to sum 1."""
    inverse = 1 / counts
    scaled = p * torch.where(torch.isinf(inverse), torch.zeros_like(inverse), inverse)
    return scaled / scaled.sum()


def fairness_loss(logits: torch.Tensor, p_model: torch.Tensor, label_hist: torch.Tensor) -> torch.Tensor:
    """The self-adaptive fairness term of the kept ids' strong-view ``logits``, as USB's
    ``entropy_loss``: ``Σ_c SumNorm(p̃/h̃)(c) · log(SumNorm(p̄/h̄)(c) + 1e-12)``."""
    probs = logits.float().softmax(dim=-1)
    hist = torch.bincount(probs.max(dim=-1).indices, minlength=probs.shape[1]).to(probs.dtype)
    hist = hist / hist.sum()
    target = _sum_norm(p_model, label_hist)
    mean = _sum_norm(probs.mean(dim=0), hist)
    return (target * torch.log(mean + 1e-12)).sum()


class FreeMatch(AdaptiveMatch):
    """Wang et al. (2023): FixMatch with self-adaptive global and local thresholds and a fairness term."""

    name = "freematch"
    paper = WANG_2023
    summary = "FixMatch with self-adaptive thresholds (moving averages of confidence) and a class-fairness term"
    Options = FreeMatchOptions
    threshold: SelfAdaptiveThreshold

    def start(self, ctx: Context, fresh: bool) -> None:
        """A new model starts from uniform averages."""
        if fresh:
            self.threshold = SelfAdaptiveThreshold(ctx.num_classes, self.options.momentum, ctx.device)

    def guess(self, ctx: Context, ids: torch.Tensor, probs: torch.Tensor) -> Guess:
        """The top class, kept (weight 1) where its probability reaches its class's self-adaptive threshold."""
        mask = self.threshold.mask(probs)
        return Guess(probs.max(dim=-1).indices, mask.float())

    def extra_loss(self, ctx: Context, logits: torch.Tensor) -> torch.Tensor:
        """``lambda_f`` times the fairness term of the kept ids' strong views."""
        return self.options.lambda_f * fairness_loss(logits, self.threshold.p_model, self.threshold.label_hist)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(FreeMatch)
