"""FixMatch's step with an adaptive pseudo-label rule: the shared base of FlexMatch, FreeMatch, SoftMatch, Dash and UDA.

USB (Wang et al. 2022, ``USB_2022``: the reference implementation of all five) writes each of them
as FixMatch's ``train_step`` with its own masking hook, the object that turns the weak view's
predictions into a mask or weight per unlabeled id and keeps the state that makes it adaptive.
:class:`AdaptiveMatch` is that ``train_step``; each method's module supplies the hook
(:meth:`AdaptiveMatch.guess`) and its state. One step:

1. the model predicts the weak view of each unlabeled id (dropout off, no gradient, as sslzoo's
   FixMatch does);
2. the method's ``guess`` turns these probabilities into a target (a class, or a distribution) and
   a weight per id (:class:`Guess`), updating its state;
3. the ids of weight 0 are left out of the training pass (they would add 0), the others are
   trained on their strong view, the labeled batch on its weak view, in one forward pass;
4. the loss is ``CE(labeled) + lambda_u · (1 / (mu·B)) · Σ_u w(u) · CE(strong(u), target(u))``
   (USB's ``consistency_loss(logits, targets, 'ce', mask)``: the weighted cross-entropy averaged
   over the whole unlabeled batch), plus the method's own term where it has one (FreeMatch's
   fairness, :meth:`AdaptiveMatch.extra_loss`); ``CE(labeled)`` is the method's too (UDA's
   training-signal annealing, :meth:`FixMatch.supervised`).

Where sslzoo differs from USB in all of them, as its FixMatch does from the FixMatch paper: USB takes
the weak view's logits from the training pass (one forward pass of the labeled, weak and strong
batches, dropout on, batch norm on the batch), sslzoo predicts the weak view with dropout off and
no gradient, as every sslzoo pseudo-labeler does; and the ids of weight 0 skip the training pass,
which leaves the loss unchanged but, in a model with batch norm, its batch statistics. On a model
with sigmoid output units (``ctx.activation``) the cross-entropies with class targets are the
units' binary ones, as in sslzoo's FixMatch; the rest reads the softmax, as USB does. The
agreement tests (``tests/test_adaptive_thresholds.py``) hold the two to the same logits.

The state belongs to the model it follows: it starts afresh when the run trains a new model (each
round with ``retrain="scratch"``) and is told of each new round (:meth:`AdaptiveMatch.start`), so
that composed with an active learner the methods follow a shrinking pool.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F

from sslzoo._contract.context import Context
from sslzoo._contract.strategy import PseudoLabels, Step, StepLoss, TrainOptions, weighted_cross_entropy
from sslzoo._default_plugins.fixmatch import FixMatch, fixmatch_field

USB_2022 = ("USB: Yidong Wang, Hao Chen, Yue Fan, et al. USB: A Unified Semi-supervised Learning Benchmark for "
            "Classification. NeurIPS 2022 Datasets and Benchmarks Track "
            "(github.com/microsoft/Semi-supervised-learning).")

@dataclass
class AdaptiveOptions(TrainOptions):
    """FixMatch's options but its fixed threshold: the batches, the loss weight, the views and the average."""

    batch_size: int | None = fixmatch_field("batch_size")
    mu: int = fixmatch_field("mu")
    lambda_u: float = fixmatch_field("lambda_u")
    weak_shift: float = fixmatch_field("weak_shift")
    flip: bool = fixmatch_field("flip")
    strong_ops: int = fixmatch_field("strong_ops")
    cutout: float = fixmatch_field("cutout")
    ema_decay: float | None = fixmatch_field("ema_decay")


class Guess(NamedTuple):
    """What a method makes of the weak view's predictions of a step's unlabeled ids: per id the
    ``target`` of its strong view (a class (k,), or a distribution over the classes (k, C)) and the
    ``weight`` of its cross-entropy (0: left out)."""

    targets: torch.Tensor
    weights: torch.Tensor

    def classes(self) -> torch.Tensor:
        """The class of each target (a distribution's most probable one)."""
        return self.targets if self.targets.dim() == 1 else self.targets.argmax(dim=1)


def consistency_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, n: int,
                     activation: str = "softmax") -> torch.Tensor:
    """``Σ w · CE(logits, target) / n``: USB's masked consistency loss over an unlabeled batch of ``n``
    ids, of which ``logits`` are those with a weight. Class targets use :func:`weighted_cross_entropy`
    (and so the model's ``activation``), distributions the softmax cross-entropy ``-Σ t log softmax``."""
    if targets.dim() == 2:
        per_sample = -(targets * F.log_softmax(logits.float(), dim=1)).sum(dim=1)
        return (per_sample * weights).sum() / n
    return weighted_cross_entropy(logits, targets, weights, activation) * (targets.numel() / n)


class AdaptiveMatch(FixMatch, ABC):
    """FixMatch whose mask is the method's (:meth:`guess`); not registered itself."""

    Options: ClassVar[type] = AdaptiveOptions  # type: ignore[assignment]  # FixMatch's, less its threshold

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._model: weakref.ref[torch.nn.Module] | None = None
        self._round = -1

    # -- the method's part -------------------------------------------------------------------
    def start(self, ctx: Context, fresh: bool) -> None:
        """Before the first step of a round (``fresh``: of a new model, whose state starts afresh)."""

    @abstractmethod
    def guess(self, ctx: Context, ids: torch.Tensor, probs: torch.Tensor) -> Guess:
        """Targets and weights for the unlabeled ``ids`` from the weak view's probabilities ``probs``
        (k, C); updates the method's state (USB's masking hook)."""

    def extra_loss(self, ctx: Context, logits: torch.Tensor) -> torch.Tensor | None:
        """A term added to the loss, from the strong-view logits of the ids with a weight (None: none)."""
        return None

    # -- the step (USB's train_step) ----------------------------------------------------------
    def follow(self, ctx: Context) -> None:
        """Call :meth:`start` when the step is the first of a round or of a new model."""
        fresh = self._model is None or self._model() is not ctx.model
        if fresh or ctx.round != self._round:
            self.start(ctx, fresh)
            self._model, self._round = weakref.ref(ctx.model), ctx.round

    def loss(self, ctx: Context, step: Step) -> StepLoss:
        """``CE(weak(labeled)) + lambda_u · Σ_u w(u) · CE(strong(u), target(u)) / (mu·B)`` (+ the
        method's extra term), target and weight from :meth:`guess` on the weak view's prediction."""
        labeled, unlabeled = step.labeled, step.unlabeled
        if unlabeled is None:
            return self.labeled_only(ctx, labeled)
        self.follow(ctx)
        probs = ctx.predict(unlabeled, view=lambda x: self.weak(ctx, x))
        guess = self.guess(ctx, unlabeled, probs)
        keep = guess.weights > 0
        pseudo = PseudoLabels(unlabeled, guess.classes(), probs.max(dim=1).values, keep)
        kept = unlabeled[keep]
        strong = self.strong(ctx, self.weak(ctx, ctx.x[kept])) if kept.numel() else ctx.x[kept]
        n = labeled.ids.numel()
        logits = ctx.model(torch.cat([self.weak(ctx, labeled.x), strong]))
        loss = (self.supervised(ctx, logits[:n], labeled)
                + self.options.lambda_u * consistency_loss(logits[n:], guess.targets[keep], guess.weights[keep],
                                                           unlabeled.numel(), ctx.activation))
        extra = self.extra_loss(ctx, logits[n:]) if kept.numel() else None
        if extra is not None:
            loss = loss + extra
        self.follow_average(ctx)
        return StepLoss(loss, pseudo)


class DistributionAlignment:
    """Predictions scaled by ``p_target / p_model`` and renormalised, ``p_model`` the moving average of the
    batches' mean prediction (USB's ``DistAlignEMAHook``)."""

    def __init__(self, p_target: torch.Tensor, momentum: float) -> None:
        self.p_target, self.momentum = p_target, momentum
        self.p_model: torch.Tensor | None = None

    def align(self, probs: torch.Tensor) -> torch.Tensor:
        """Move ``p_model`` towards the mean of ``probs``, then align them."""
        mean = probs.mean(dim=0)
        m = self.momentum
        self.p_model = mean if self.p_model is None else self.p_model * m + mean * (1 - m)
        aligned = probs * (self.p_target + 1e-6) / (self.p_model + 1e-6)
        return aligned / aligned.sum(dim=-1, keepdim=True)
