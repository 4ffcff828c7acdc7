"""ReMixMatch (Berthelot et al. 2020): MixMatch with distribution alignment and augmentation anchoring.

Each unlabeled id's guess comes from its weak view alone (the anchor): the model's prediction
(dropout off, no gradient) is aligned to the labeled class distribution, ``p̃ = Normalize(p ·
p(y) / p̂)``, p(y) the class frequencies of the oracle labels and p̂ a moving average (momentum
0.999, starting at the first batch's mean) of the predictions, then sharpened by T = 0.5. The
id's ``k`` strong views (K = 8) take that guess as target. The labeled batch's weak view (one-hot
targets), the K strong views and the weak view are mixed with a shuffle of themselves (MixUp, λ' =
max(λ, 1 − λ), λ ~ Beta(0.75, 0.75)), and the loss is

    CE(mixed labeled) + w(t) · (lambda_u · CE(mixed unlabeled) + lambda_u1 · CE(first strong view, guess))

with lambda_u = 1.5, lambda_u1 = 0.5 (the pre-mixup loss of the first strong view) and w(t) rising
linearly over the first 16,384 unlabeled batches. Cross-entropies of soft targets replace
MixMatch's squared error. The run reports an exponential moving average of the weights (0.999).

The port follows USB's ``ReMixMatch.train_step`` and ``DistAlignEMAHook`` (``p_target_type='gt'``).
Where sslzoo differs:

- CTAugment is replaced by RandAugment with Cutout (:mod:`sslzoo._ops.randaugment`, the strong view of
  sslzoo's FixMatch): CTAugment learns its magnitudes from the model's errors on labeled images, a
  feedback loop outside the strategy contract; RandAugment, with which FixMatch's paper reports
  results on par with CTAugment's, takes its place;
- the rotation loss (lambda_r = 0.5, a 4-way rotation head on the features of the first strong
  view) is left out: it needs a second head the model does not have, and rotations are meaningless
  on the non-image inputs sslzoo also trains on;
- p(y) is recomputed from the oracle labels at each round (composed with an active learner they
  grow), p̂ starts afresh with each new model; USB's p(y) is fixed;
- as in :mod:`sslzoo._default_plugins.mixmatch`: λ per example, guesses with dropout off, one
  forward pass, the softmax read on any model; K = 8 strong views, as the paper, where USB takes
  two.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import PseudoLabels, Step, StepLoss
from sslzoo._default_plugins.adaptive import USB_2022, DistributionAlignment
from sslzoo._default_plugins.fixmatch import fixmatch_field
from sslzoo._default_plugins.mixmatch import (
    MixMatch,
    MixMatchOptions,
    mix_up,
    predict_inputs,
    sharpen,
    soft_cross_entropy,
)
from sslzoo.errors import OptionError

BERTHELOT_2020 = ("David Berthelot, Nicholas Carlini, Ekin D. Cubuk, Alex Kurakin, Kihyuk Sohn, Han Zhang, Colin "
                  "Raffel. ReMixMatch: Semi-Supervised Learning with Distribution Alignment and Augmentation "
                  "Anchoring. International Conference on Learning Representations (ICLR), 2020; reference code: "
                  + USB_2022)


@dataclass
class ReMixMatchOptions(MixMatchOptions):
    k: int = field(default=8, metadata={"min": 1, "help": "K: strong views per unlabeled id, each trained towards "
                                                          "the weak view's guess"})
    lambda_u: float = field(default=1.5, metadata={"min": 0.0, "help": "weight of the mixed unlabeled loss"})
    lambda_u1: float = field(default=0.5, metadata={
        "min": 0.0, "help": "weight of the first strong view's loss before mixing"})
    rampup_steps: int = field(default=16384, metadata={
        "min": 0, "help": "unlabeled batches over which the unlabeled weights rise linearly from 0"})
    momentum: float = field(default=0.999, metadata={
        "min": 0.0, "max": 1.0, "help": "momentum of the moving average of the predictions (distribution alignment)"})
    strong_ops: int = fixmatch_field("strong_ops")
    cutout: float = fixmatch_field("cutout")

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise OptionError(f"option temperature={self.temperature} of strategy 'remixmatch' is not allowed: it "
                              f"must be greater than 0")


def class_frequencies(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Each class's share of ``targets`` (uniform for none)."""
    counts = torch.bincount(targets, minlength=num_classes).float()
    return counts / counts.sum() if targets.numel() else torch.full_like(counts, 1 / num_classes)


class ReMixMatch(MixMatch):
    """Berthelot et al. (2020): aligned, sharpened weak-view guesses as targets of strong views, mixed."""

    name = "remixmatch"
    paper = BERTHELOT_2020
    summary = ("MixMatch with distribution alignment to the labeled class frequencies and strong views anchored to "
               "the weak view's guess (RandAugment for CTAugment)")
    Options: ClassVar[type] = ReMixMatchOptions

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._model: weakref.ref[torch.nn.Module] | None = None
        self._round = -1

    def follow(self, ctx: Context) -> DistributionAlignment:
        """The alignment of the current model: p̂ afresh for a new model, p(y) from the labels of each round."""
        fresh = self._model is None or self._model() is not ctx.model
        if fresh or ctx.round != self._round:
            target = class_frequencies(ctx.ledger.target[ctx.labeled_ids()], ctx.num_classes).to(ctx.device)
            if fresh:
                self.alignment = DistributionAlignment(target, self.options.momentum)
            self.alignment.p_target = target
            self._model, self._round = weakref.ref(ctx.model), ctx.round
        return self.alignment

    def loss(self, ctx: Context, step: Step) -> StepLoss:
        """``CE(mixed labeled) + w(t) · (lambda_u · CE(mixed unlabeled) + lambda_u1 · CE(strong_1, guess))``."""
        o = self.options
        labeled, unlabeled = step.labeled, step.unlabeled
        if unlabeled is None:
            return self.labeled_only(ctx, labeled)
        alignment = self.follow(ctx)
        weak = self.weak(ctx, ctx.x[unlabeled])
        guess = sharpen(alignment.align(predict_inputs(ctx, weak)), o.temperature)
        strong = [self.strong(ctx, self.weak(ctx, ctx.x[unlabeled])) for _ in range(o.k)]
        onehot = F.one_hot(labeled.targets, ctx.num_classes).to(guess.dtype)
        inputs = torch.cat([self.weak(ctx, labeled.x), *strong, weak])
        targets = torch.cat([onehot, guess.repeat(o.k + 1, 1)])
        mixed_x, mixed_y = mix_up(inputs, targets, self.mixing(ctx, inputs.shape[0]))
        logits = ctx.model(torch.cat([mixed_x, strong[0]]))
        n, mixed = labeled.ids.numel(), inputs.shape[0]
        sup = (soft_cross_entropy(logits[:n], mixed_y[:n]) * labeled.weights).mean()
        unsup = soft_cross_entropy(logits[n:mixed], mixed_y[n:]).mean()
        anchored = soft_cross_entropy(logits[mixed:], guess).mean()
        loss = sup + self.rampup(ctx) * (o.lambda_u * unsup + o.lambda_u1 * anchored)
        self.follow_average(ctx)
        confidence, classes = guess.max(dim=-1)
        return StepLoss(loss, PseudoLabels(unlabeled, classes, confidence))


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(ReMixMatch)
