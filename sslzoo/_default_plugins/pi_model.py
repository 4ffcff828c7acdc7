"""The Π-model (Laine & Aila 2017): two stochastic passes of the same inputs must agree.

Each step the model sees every labeled and unlabeled input of the step twice, each time with its
own augmentation (shifted by up to ±2 pixels of 32, plus Gaussian noise of std 0.15) and its own
dropout masks, and the loss is

    CE(labeled, first pass) + w(t) · mean over samples and classes of (softmax(pass 1) - softmax(pass 2))^2

with gradients through both passes, as in the authors' code. w(t) = ``consistency`` ·
exp(-5 (1 - T)^2), T rising from 0 to 1 over the first ``rampup_steps`` unlabeled batches (the
paper's 80 epochs of 500 minibatches). The paper's maximum weight, 100, is scaled there by the
labeled fraction M/N because its cross-entropy is averaged over whole minibatches in which only
that fraction is labeled; sslzoo averages the cross-entropy over the labeled batch, so the
unscaled 100 weighs the two terms as the paper does. The record's pseudo-labels are the model's
argmax on the unlabeled batches (dropout off), which the loss does not use.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import Step, StepLoss, weighted_cross_entropy
from sslzoo._strategies.consistency import NoisyViews, NoisyViewsOptions, pseudo_labels, softmax_mse

LAINE_2017 = ("Samuli Laine, Timo Aila. Temporal Ensembling for Semi-Supervised Learning. International Conference "
              "on Learning Representations (ICLR), 2017.")


class PiModel(NoisyViews):
    """Laine & Aila (2017): squared difference of two augmented, dropout-noisy passes."""

    name = "pi_model"
    paper = LAINE_2017
    summary = "two stochastic passes (augmentation + dropout), squared-difference consistency, Gaussian ramp-up"
    Options = NoisyViewsOptions

    def loss(self, ctx: Context, step: Step) -> StepLoss:
        """``CE(labeled, pass 1) + w(t) · mean (softmax(pass 1) - softmax(pass 2))^2`` over both batches,
        each pass on its own noisy view with its own dropout, gradients through both."""
        labeled, unlabeled = step.labeled, step.unlabeled
        # the record's pseudo-labels: the model's argmax on the unlabeled batch, dropout off (the loss does not use it)
        pseudo = pseudo_labels(unlabeled, ctx.predict(unlabeled)) if unlabeled is not None else None
        first = self.student(ctx, labeled.x, unlabeled)
        ids = labeled.ids if unlabeled is None else torch.cat([labeled.ids, unlabeled])
        second = ctx.model(self.view(ctx, ctx.x[ids]))
        weight = self.options.consistency * self.rampup(ctx)
        n = labeled.ids.numel()
        loss = (weighted_cross_entropy(first[:n], labeled.targets, labeled.weights, ctx.activation)
                + weight * softmax_mse(first, torch.softmax(second.float(), dim=1)))
        return StepLoss(loss, pseudo)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(PiModel)
