"""MixMatch (Berthelot et al. 2019): guessed labels from K views, sharpened, and MixUp of everything.

Each optimizer step joins ``mu`` × ``batch_size`` unlabeled ids (mu = 1, B = 64) to a labeled batch.
Every unlabeled id is augmented ``k`` times (K = 2; the weak view: shifted, and with ``flip``
mirrored), the model (dropout off, no gradient) predicts each view, and the guess ``q`` is the
average of the K predictions sharpened by temperature T = 0.5: ``q ∝ p̄^(1/T)``. The labeled
batch's weak view (targets one-hot) and the K views of the unlabeled ids (target q each) are
concatenated and mixed with a shuffle of themselves (MixUp): ``x' = λ' x_i + (1 − λ') x_j``, the
targets alike, with ``λ' = max(λ, 1 − λ)``, ``λ ~ Beta(α, α)`` (α = 0.75), so that each mixed
example stays closer to its own input. The loss is (eqs. 3-5)

    CE(mixed labeled, mixed targets) + lambda_u · w(t) · mean over ids and classes of (softmax − mixed target)²

with lambda_u = 100, w(t) rising linearly from 0 to 1 over the first ``rampup_steps`` unlabeled
batches (16,000). The run reports an exponential moving average of the weights (decay 0.999), as
the paper does. The record counts each unlabeled id's guess (its argmax) as a pseudo-label.

The port follows USB's ``MixMatch.train_step`` and ``mixup_one_target``. Where sslzoo differs:

- λ is drawn per mixed example, as the authors' code does; USB draws one per batch (given the
  same λ and shuffle, the two compute the same loss);
- the guesses are predicted with dropout off, as every sslzoo pseudo-labeler does; USB predicts
  in training mode (batch norm on the batch, its statistics kept);
- the mixed batch is one forward pass; USB passes it in chunks of B, updating the batch-norm
  statistics on the first only (the interleaving the authors' code uses for the same purpose);
- K views of the weak augmentation, as the paper, where USB guesses from one weak and one strong
  view (K = 2 fixed); the paper's defaults for λ_U, α and the ramp-up where USB's configurations
  take 100, 0.5 and 40 % of the training;
- the loss reads the softmax, also on a model with sigmoid output units; the labeled term weighs
  each mixed example by its labeled id's weight (1 unless a composed strategy weighs its labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import PseudoLabels, Step, StepLoss, TrainOptions
from sslzoo._default_plugins.adaptive import USB_2022
from sslzoo._default_plugins.fixmatch import FixMatch, fixmatch_field
from sslzoo._ops.inference import probabilities
from sslzoo.errors import OptionError

BERTHELOT_2019 = ("David Berthelot, Nicholas Carlini, Ian Goodfellow, Nicolas Papernot, Avital Oliver, Colin Raffel. "
                  "MixMatch: A Holistic Approach to Semi-Supervised Learning. Advances in Neural Information "
                  "Processing Systems 32 (NeurIPS), 2019; reference code: " + USB_2022)

@dataclass
class MixMatchOptions(TrainOptions):
    batch_size: int | None = fixmatch_field("batch_size")
    mu: int = fixmatch_field("mu", 1)
    k: int = field(default=2, metadata={"min": 1, "help": "K: augmented views per unlabeled id whose predictions "
                                                          "are averaged into its guess"})
    temperature: float = field(default=0.5, metadata={
        "min": 0.0, "help": "T: the guess is the mean prediction to the power 1/T, normalised (greater than 0)"})
    alpha: float = field(default=0.75, metadata={
        "min": 0.0, "help": "MixUp's lambda is drawn from Beta(alpha, alpha) (0: no mixing)"})
    lambda_u: float = field(default=100.0, metadata={"min": 0.0, "help": "weight of the unlabeled loss"})
    rampup_steps: int = field(default=16000, metadata={
        "min": 0, "help": "unlabeled batches over which the unlabeled weight rises linearly from 0"})
    weak_shift: float = fixmatch_field("weak_shift")
    flip: bool = fixmatch_field("flip")
    ema_decay: float | None = fixmatch_field("ema_decay")

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise OptionError(f"option temperature={self.temperature} of strategy 'mixmatch' is not allowed: it "
                              f"must be greater than 0")


class Mixing(NamedTuple):
    """One MixUp draw over ``n`` examples: each one's weight ``lam`` (n,), at least 0.5, and the
    example ``partner`` (n,) it is mixed with."""

    lam: torch.Tensor
    partner: torch.Tensor


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``p^(1/T)`` normalised per row (eq. 7)."""
    sharp = probs ** (1 / temperature)
    return sharp / sharp.sum(dim=-1, keepdim=True)


def mix_up(x: torch.Tensor, targets: torch.Tensor, mixing: Mixing) -> tuple[torch.Tensor, torch.Tensor]:
    """``λ x + (1 − λ) x[partner]`` and the same of the targets, λ per example."""
    lam_x = mixing.lam.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    lam_y = mixing.lam.to(targets.dtype).unsqueeze(1)
    return (lam_x * x + (1 - lam_x) * x[mixing.partner],
            lam_y * targets + (1 - lam_y) * targets[mixing.partner])


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-Σ_c t_c log softmax(logits)_c`` per example."""
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)


def predict_inputs(ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """The model's probabilities (k, C) for a batch of inputs ``x``, dropout off, no gradient."""
    return probabilities(ctx.model, x, torch.arange(x.shape[0], device=x.device), grad_free="no_grad",
                         precision=ctx.precision)


class MixMatch(FixMatch):
    """Berthelot et al. (2019): sharpened guesses from K views, MixUp of labeled and unlabeled examples."""

    name = "mixmatch"
    paper = BERTHELOT_2019
    summary = "sharpened label guesses averaged over K augmentations, MixUp of labeled and unlabeled examples"
    Options: ClassVar[type] = MixMatchOptions  # type: ignore[assignment]  # FixMatch's views, not its threshold

    def mixing(self, ctx: Context, n: int) -> Mixing:
        """λ' = max(λ, 1 − λ), λ ~ Beta(alpha, alpha), for each of ``n`` examples, and a shuffle of them
        (from the run's generator)."""
        device = ctx.generator.device
        seed = int(torch.randint(2**62, (1,), generator=ctx.generator, device=device))
        alpha = self.options.alpha
        drawn = np.random.default_rng(seed).beta(alpha, alpha, n) if alpha > 0 else np.ones(n)
        lam = torch.as_tensor(np.maximum(drawn, 1 - drawn), dtype=torch.float32, device=ctx.x.device)
        return Mixing(lam, torch.randperm(n, generator=ctx.generator, device=device).to(ctx.x.device))

    def rampup(self, ctx: Context) -> float:
        """The unlabeled weight's factor: the unlabeled batches before this one over ``rampup_steps``, at most 1."""
        steps = self.options.rampup_steps
        return 1.0 if steps == 0 else min(max(ctx.unlabeled_batches - 1, 0) / steps, 1.0)

    def loss(self, ctx: Context, step: Step) -> StepLoss:
        """``CE(mixed labeled) + lambda_u · w(t) · ||softmax(mixed unlabeled) − mixed guess||²`` (Algorithm 1)."""
        o = self.options
        labeled, unlabeled = step.labeled, step.unlabeled
        if unlabeled is None:
            return self.labeled_only(ctx, labeled)
        x_u = ctx.x[unlabeled]
        views = [self.weak(ctx, x_u) for _ in range(o.k)]
        guess = sharpen(torch.stack([predict_inputs(ctx, v) for v in views]).mean(dim=0), o.temperature)
        onehot = F.one_hot(labeled.targets, ctx.num_classes).to(guess.dtype)
        inputs = torch.cat([self.weak(ctx, labeled.x), *views])
        targets = torch.cat([onehot, guess.repeat(o.k, 1)])
        mixed_x, mixed_y = mix_up(inputs, targets, self.mixing(ctx, inputs.shape[0]))
        logits = ctx.model(mixed_x)
        n = labeled.ids.numel()
        unsup = ((logits[n:].float().softmax(dim=-1) - mixed_y[n:]) ** 2).mean()
        sup = (soft_cross_entropy(logits[:n], mixed_y[:n]) * labeled.weights).mean()
        loss = sup + o.lambda_u * self.rampup(ctx) * unsup
        self.follow_average(ctx)
        confidence, classes = guess.max(dim=-1)
        return StepLoss(loss, PseudoLabels(unlabeled, classes, confidence))


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(MixMatch)
