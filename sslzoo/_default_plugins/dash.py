"""Dash (Xu et al. 2021): FixMatch keeping the unlabeled ids whose loss is below a falling threshold.

A warm-up of ``warmup_steps`` (2048) trains on the labeled batches alone; its model's mean
cross-entropy on the labeled set is ρ̂. From then on the threshold is ``ρ_t = max(C · γ^−k · ρ̂,
rho_min)`` (C = 1.0001, γ = 1.27, ρ_min = 0.05), k counting the updates, one every ``rho_every``
steps (10240: USB's ten epochs of 1024 iterations). Each unlabeled id's pseudo-label is the
sharpened prediction of its weak view, ``softmax(log p / T)`` (T = 0.5), until ρ_t reaches ρ_min,
and its top class from then on; the id is kept when the cross-entropy of its weak view against
that pseudo-label is at most ρ_t. The loss is FixMatch's (:mod:`sslzoo._default_plugins.adaptive`)
with these targets.

The port follows USB's ``Dash`` and ``DashThresholdingHook``. Where sslzoo differs: ρ̂ is the loss
on the labeled examples, as the paper's warm-up stage estimates it; USB reads it off its evaluation
set, the test set, whose labels a strategy never sees in sslzoo. The warm-up steps are part of the
run's steps (USB adds them before its iteration count). Dash reads the weak view's
log-probabilities where USB reads its logits: they differ by a constant per id, which neither the
softmax nor the cross-entropy sees.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import Step, StepLoss
from sslzoo._default_plugins.adaptive import USB_2022, AdaptiveMatch, AdaptiveOptions, Guess
from sslzoo.errors import OptionError

XU_2021 = ("Yi Xu, Lei Shang, Jinxing Ye, Qi Qian, Yu-Feng Li, Baigui Sun, Hao Li, Rong Jin. Dash: Semi-Supervised "
           "Learning with Dynamic Thresholding. Proceedings of the 38th International Conference on Machine Learning "
           "(ICML), PMLR 139, 2021; reference code: " + USB_2022)


@dataclass
class DashOptions(AdaptiveOptions):
    temperature: float = field(default=0.5, metadata={
        "min": 0.0, "help": "T: the pseudo-labels are softmax(log p / T) until the threshold reaches rho_min "
                            "(greater than 0)"})
    gamma: float = field(default=1.27, metadata={
        "min": 1.0, "help": "the threshold is divided by this at every update"})
    c: float = field(default=1.0001, metadata={
        "min": 0.0, "help": "C: the first threshold is C times the warm-up's labeled loss (greater than 0)"})
    rho_min: float = field(default=0.05, metadata={
        "min": 0.0, "help": "the threshold never falls below this; reaching it, the pseudo-labels become hard"})
    warmup_steps: int = field(default=2048, metadata={
        "min": 0, "help": "steps on the labeled batches alone before any pseudo-label"})
    rho_every: int = field(default=10240, metadata={"min": 1, "help": "steps between two updates of the threshold"})

    def __post_init__(self) -> None:
        for name in ("temperature", "c"):
            if getattr(self, name) <= 0:
                raise OptionError(f"option {name}={getattr(self, name)} of strategy 'dash' is not allowed: it must "
                                  f"be greater than 0")


class DynamicThreshold:
    """Dash's threshold ρ on the weak view's loss: ``max(C · γ^−k · ρ̂, ρ_min)``, the k-th update
    after ``every`` steps times k."""

    def __init__(self, rho_init: float, gamma: float, c: float, rho_min: float, every: int) -> None:
        self.rho_init, self.gamma, self.c, self.rho_min, self.every = rho_init, gamma, c, rho_min, every
        self.rho = rho_init
        self.updates = 0
        self.steps = 0

    @property
    def hard(self) -> bool:
        """Whether the pseudo-labels are classes: once ρ has reached ρ_min."""
        return self.rho == self.rho_min

    def advance(self) -> None:
        """One step: update ρ at the first of every ``every`` steps."""
        if self.steps % self.every == 0:
            self.rho = max(self.c * (self.gamma ** -self.updates) * self.rho_init, self.rho_min)
            self.updates += 1
        self.steps += 1

    def guess(self, probs: torch.Tensor, temperature: float) -> Guess:
        """Pseudo-labels of weak-view probabilities ``probs`` (sharpened, or their top classes once
        ``hard``), kept where the weak view's cross-entropy against them is at most ρ."""
        log_probs = probs.log()
        if self.hard:
            targets = probs.max(dim=-1).indices
            loss = -log_probs.gather(1, targets[:, None]).squeeze(1)
        else:
            targets = torch.softmax(log_probs / temperature, dim=-1)
            loss = -torch.special.xlogy(targets, probs).sum(dim=-1)
        return Guess(targets, (loss <= self.rho).float())


def labeled_loss(ctx: Context) -> float:
    """The current model's mean cross-entropy on the oracle-labeled ids (dropout off)."""
    ids = ctx.labeled_ids()
    probs = ctx.predict(ids)
    picked = probs.gather(1, ctx.ledger.target[ids][:, None]).squeeze(1)
    return float(-picked.clamp_min(torch.finfo(probs.dtype).tiny).log().mean())


class Dash(AdaptiveMatch):
    """Xu et al. (2021): after a supervised warm-up, FixMatch keeping the ids whose loss is below a
    threshold that falls geometrically."""

    name = "dash"
    paper = XU_2021
    summary = "FixMatch keeping the unlabeled ids whose loss is below a threshold that falls after a warm-up"
    Options = DashOptions
    threshold: DynamicThreshold | None
    warmup_left: int

    def start(self, ctx: Context, fresh: bool) -> None:
        """A new model warms up again and estimates its own first threshold."""
        if fresh:
            self.threshold, self.warmup_left = None, self.options.warmup_steps

    def loss(self, ctx: Context, step: Step) -> StepLoss:
        """The labeled batch's loss during the warm-up; then FixMatch's with Dash's threshold."""
        self.follow(ctx)
        if self.warmup_left > 0:
            self.warmup_left -= 1
            return self.labeled_only(ctx, step.labeled)
        return super().loss(ctx, step)

    def guess(self, ctx: Context, ids: torch.Tensor, probs: torch.Tensor) -> Guess:
        """Sharpened (later hard) pseudo-labels, kept where the weak view's loss is at most ρ."""
        o = self.options
        if self.threshold is None:
            self.threshold = DynamicThreshold(labeled_loss(ctx), o.gamma, o.c, o.rho_min, o.rho_every)
        self.threshold.advance()
        return self.threshold.guess(probs, o.temperature)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(Dash)
