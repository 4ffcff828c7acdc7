"""Mean Teacher (Tarvainen & Valpola 2017): the student agrees with an average of its own weights.

The teacher is the engine's teacher facility (``ctx.teacher``): a copy of the model whose weights
follow the student's by an exponential moving average after every optimizer step, with decay
``ema_decay_rampup`` (0.99) during the ramp-up and ``ema_decay`` (0.999) after it, and the plain
mean of the weights before the decay takes over (the authors' code). Each step, the student sees
one noisy view of the labeled and unlabeled inputs (shifted by up to ±2 pixels of 32, plus Gaussian
noise of std 0.15, with its dropout on), the teacher another (its own dropout on too), and the loss
is

    CE(labeled) + w(t) · mean over samples and classes of (softmax(student) - softmax(teacher))^2

on the labeled and the unlabeled samples alike (the code's ``apply_consistency_to_labeled``), with
w(t) = ``consistency`` (100) · exp(-5 (1 - T)^2), T rising from 0 to 1 over the first
``rampup_steps`` unlabeled batches (40,000, the code's ramp-up). No gradient flows into the
teacher. The run reports the teacher (``evaluated_model``), as the paper does. The record's
pseudo-labels are the teacher's argmax on the unlabeled batches: how good its targets are.

Left to the training options: the paper's Adam with its learning-rate ramps (a ramp-up over the
same 40,000 steps, a ramp-down at the end) and its beta2 schedule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import Step, StepLoss, weighted_cross_entropy
from sslzoo._ops.inference import autocast
from sslzoo._ops.teacher import Teacher
from sslzoo._strategies.consistency import NoisyViews, NoisyViewsOptions, pseudo_labels, softmax_mse

TARVAINEN_2017 = ("Antti Tarvainen, Harri Valpola. Mean Teachers Are Better Role Models: Weight-Averaged Consistency "
                  "Targets Improve Semi-Supervised Deep Learning Results. Advances in Neural Information Processing "
                  "Systems 30 (NIPS), 2017.")
TEACHER = "mean_teacher"


@dataclass
class MeanTeacherOptions(NoisyViewsOptions):
    ema_decay: float = field(default=0.999, metadata={
        "min": 0.0, "max": 1.0, "help": "the teacher's decay after the ramp-up"})
    ema_decay_rampup: float = field(default=0.99, metadata={
        "min": 0.0, "max": 1.0, "help": "the teacher's decay during the ramp-up"})


class MeanTeacher(NoisyViews):
    """Tarvainen & Valpola (2017): consistency with an exponential moving average of the model."""

    name = "mean_teacher"
    paper = TARVAINEN_2017
    summary = ("consistency (MSE of softmaxes) with an EMA teacher on another noisy view, sigmoid ramp-up; reports "
               "the teacher")
    Options = MeanTeacherOptions

    def teacher(self, ctx: Context) -> Teacher:
        """The teacher, created from the model on the first ask, with the decay of this moment."""
        o = self.options
        decay = o.ema_decay_rampup if ctx.unlabeled_batches <= o.rampup_steps else o.ema_decay
        return ctx.teacher(decay, name=TEACHER)

    def teacher_probabilities(self, ctx: Context, ids: torch.Tensor) -> torch.Tensor:
        """The teacher's softmax on its own noisy view of ``ids``, its dropout as the student's, no gradient."""
        model = self.teacher(ctx).model
        model.train(ctx.model.training)
        with torch.no_grad(), autocast(ctx.device, ctx.precision):
            return torch.softmax(model(self.view(ctx, ctx.x[ids])).float(), dim=1)

    def loss(self, ctx: Context, step: Step) -> StepLoss:
        """``CE(labeled) + w(t) · softmax MSE(student, teacher)`` over both batches, student and teacher
        each on its own noisy view."""
        labeled, unlabeled = step.labeled, step.unlabeled
        teacher_unlabeled = self.teacher_probabilities(ctx, unlabeled) if unlabeled is not None else None
        student = self.student(ctx, labeled.x, unlabeled)
        targets = self.teacher_probabilities(ctx, labeled.ids)
        if teacher_unlabeled is not None:
            targets = torch.cat([targets, teacher_unlabeled])
        weight = self.options.consistency * self.rampup(ctx)
        n = labeled.ids.numel()
        loss = (weighted_cross_entropy(student[:n], labeled.targets, labeled.weights, ctx.activation)
                + weight * softmax_mse(student, targets))
        # the record's pseudo-labels: the teacher's argmax on the unlabeled batch
        pseudo = None if unlabeled is None or teacher_unlabeled is None else pseudo_labels(unlabeled, teacher_unlabeled)
        return StepLoss(loss, pseudo)

    def evaluated_model(self, ctx: Context) -> nn.Module:
        """The teacher."""
        return self.teacher(ctx).model


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(MeanTeacher)
