"""FixMatch (Sohn et al. 2020): pseudo-labels from a weak view, cross-entropy on a strong view.

Each optimizer step joins ``mu`` × ``batch_size`` unlabeled ids to a labeled batch of
``batch_size``. The model (dropout off, no gradient) predicts a weakly augmented view of each
unlabeled image (shifted by up to 12.5 % of its size); the ids whose top probability reaches
``threshold`` (0.95) are pseudo-labeled with that class and trained on a strongly augmented view
(RandAugment: two random operations of random magnitude per image, then Cutout;
:mod:`sslzoo._ops.randaugment`). The labeled batch is trained on its weak view. The loss is the
paper's eq. (4),

    CE(labeled) + lambda_u · (1 / (mu·B)) · Σ_{confident u} CE(strong(u), pseudo-label(u))

— the unlabeled term divided by the whole unlabeled batch, so that the confident fraction scales
it. Only the confident ids enter the training forward pass (the others would add 0). As the paper
reports, the accuracy is that of an exponential moving average of the weights (decay 0.999):
the engine's teacher facility keeps it, the plain mean of the weights until the decay takes over
(about 1000 steps) where the paper's average starts from the initial weights (``ema_decay`` none:
the model itself).

Augmentations are batched tensor ops on the device, drawn from the run's generator. On inputs
that are not images (two-moons) both views are the inputs themselves, and FixMatch is plain
confidence-thresholded pseudo-labeling. Differences from the paper: its weak view also mirrors
natural images half the time (``flip``, off here: digits are not mirror-symmetric); it predicts
the weak view with the model in training mode (batch norm on the batch), sslzoo with dropout off
as every pseudo-labeler does; its SGD with Nesterov momentum and a cosine learning-rate decay is
left to the training options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import (
    Batch,
    EpochPlan,
    PseudoLabels,
    Step,
    StepLoss,
    TrainOptions,
    weighted_cross_entropy,
)
from sslzoo._ops.augment import shift_and_noise
from sslzoo._ops.randaugment import rand_augment
from sslzoo._strategies.pseudo import ArgmaxPseudoLabeler

SOHN_2020 = ("Kihyuk Sohn, David Berthelot, Chun-Liang Li, Zizhao Zhang, Nicholas Carlini, Ekin D. Cubuk, Alex "
             "Kurakin, Han Zhang, Colin Raffel. FixMatch: Simplifying Semi-Supervised Learning with Consistency and "
             "Confidence. Advances in Neural Information Processing Systems 33 (NeurIPS), 2020; RandAugment: Ekin D. "
             "Cubuk, Barret Zoph, Jonathon Shlens, Quoc V. Le. RandAugment: Practical Automated Data Augmentation "
             "with a Reduced Search Space. CVPR Workshops, 2020; Cutout: Terrance DeVries, Graham W. Taylor. "
             "Improved Regularization of Convolutional Neural Networks with Cutout. arXiv:1708.04552, 2017.")
EMA_TEACHER = "ema"


@dataclass
class FixMatchOptions(TrainOptions):
    batch_size: int | None = field(default=64, metadata={"min": 1, "help": "labeled batch size B (the paper's 64)"})
    mu: int = field(default=7, metadata={"min": 1, "help": "unlabeled ids per step: mu × batch_size"})
    threshold: float = field(default=0.95, metadata={
        "min": 0.0, "max": 1.0, "help": "pseudo-label an unlabeled id when the weak view's top probability is at "
                                        "least this (tau)"})
    lambda_u: float = field(default=1.0, metadata={"min": 0.0, "help": "weight of the unlabeled loss"})
    weak_shift: float = field(default=0.125, metadata={
        "min": 0.0, "max": 0.5, "help": "weak view: shift by up to this fraction of the image size"})
    flip: bool = field(default=False, metadata={"help": "weak view: also mirror half the images (natural images)"})
    strong_ops: int = field(default=2, metadata={
        "min": 0, "help": "strong view: RandAugment operations per image (N)"})
    cutout: float = field(default=0.5, metadata={
        "min": 0.0, "max": 1.0, "help": "strong view: Cutout square of side up to this fraction of the image "
                                        "(0: none)"})
    ema_decay: float | None = field(default=0.999, metadata={
        "min": 0.0, "max": 1.0, "help": "report an exponential moving average of the weights with this decay "
                                        "(none: the model itself)"})


def fixmatch_field(name: str, default: Any = dataclasses.MISSING) -> Any:
    """A field with FixMatch's bounds and help for option ``name``, and its default unless given."""
    known = {f.name: f for f in dataclasses.fields(FixMatchOptions)}[name]
    return field(default=known.default if default is dataclasses.MISSING else default, metadata=known.metadata)


class FixMatch(ArgmaxPseudoLabeler):
    """Sohn et al. (2020): confident weak-view predictions are the targets of strong views. Its labeled
    batches hold 64 ids (the paper's B; the training option ``batch_size``), not the dataset's default."""

    name = "fixmatch"
    level = "step"
    paper = SOHN_2020
    summary = "pseudo-labels from weak views above a confidence threshold, cross-entropy on strong (RandAugment) views"
    Options = FixMatchOptions

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        if self.options.batch_size is None:
            self.options = dataclasses.replace(self.options, batch_size=FixMatchOptions.batch_size)

    def epoch_plan(self, ctx: Context) -> EpochPlan:
        """Every step: a labeled batch of B and an unlabeled batch of mu·B."""
        return EpochPlan(int(self.options.mu * self.options.batch_size))

    def weak(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        """The weak view of a batch of inputs: shifted (and with ``flip`` mirrored)."""
        return shift_and_noise(x, ctx.generator, self.options.weak_shift, flip=self.options.flip)

    def strong(self, ctx: Context, weak: torch.Tensor) -> torch.Tensor:
        """The strong view of a weak view: RandAugment, then Cutout."""
        return rand_augment(weak, ctx.generator, self.options.strong_ops, self.options.cutout)

    def supervised(self, ctx: Context, logits: torch.Tensor, labeled: Batch) -> torch.Tensor:
        """The labeled batch's term from its training ``logits``: the weighted cross-entropy."""
        return weighted_cross_entropy(logits, labeled.targets, labeled.weights, ctx.activation)

    def labeled_only(self, ctx: Context, labeled: Batch) -> StepLoss:
        """The labeled term of the labeled batch's weak view alone (a step without unlabeled ids)."""
        loss = self.supervised(ctx, ctx.model(self.weak(ctx, labeled.x)), labeled)
        self.follow_average(ctx)
        return StepLoss(loss)

    def follow_average(self, ctx: Context) -> None:
        """Keep the moving average of the weights (``ema_decay``) that the run reports."""
        if self.options.ema_decay is not None:
            ctx.teacher(self.options.ema_decay, name=EMA_TEACHER)  # created at the first step, then followed

    # -- the objective (the paper's Algorithm 1) --------------------------------------------
    def loss(self, ctx: Context, step: Step) -> StepLoss:
        """``CE(weak(labeled)) + lambda_u · Σ_{max q ≥ tau} CE(strong(u), argmax q) / (mu·B)`` (eq. 4),
        q the model's prediction on the weak view of each unlabeled id (no gradient)."""
        o = self.options
        labeled, unlabeled = step.labeled, step.unlabeled
        if unlabeled is None:
            return self.labeled_only(ctx, labeled)
        # pseudo-labels: the prediction on the weak view, kept where confident (one host sync: the count)
        confidence, targets = ctx.predict(unlabeled, view=lambda x: self.weak(ctx, x)).max(dim=1)
        pseudo = PseudoLabels(unlabeled, targets, confidence, confidence >= o.threshold)
        weak = self.weak(ctx, labeled.x)
        n = labeled.ids.numel()
        kept, kept_targets, kept_confidence = pseudo.used()
        strong = self.strong(ctx, self.weak(ctx, ctx.x[kept])) if kept.numel() else ctx.x[kept]
        logits = ctx.model(torch.cat([weak, strong]))
        loss_u = weighted_cross_entropy(logits[n:], kept_targets, torch.ones_like(kept_confidence), ctx.activation)
        loss = (self.supervised(ctx, logits[:n], labeled)
                + o.lambda_u * (kept.numel() / pseudo.ids.numel()) * loss_u)
        self.follow_average(ctx)
        return StepLoss(loss, pseudo)

    def evaluated_model(self, ctx: Context) -> nn.Module:
        """The moving average of the weights (``ema_decay``), or the model itself."""
        if self.options.ema_decay is None:
            return ctx.model
        return ctx.teacher(self.options.ema_decay, name=EMA_TEACHER).model


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(FixMatch)
