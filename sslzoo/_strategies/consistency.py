"""Consistency regularisation: the shared base of the strategies whose unlabeled loss asks the model
to agree with a target for the same input (the Π-model, the mean teacher, VAT).

Each optimizer step joins an unlabeled batch from the pool to the labeled batch (``epoch_plan``);
the strategy's ``loss`` computes each unlabeled id's target distribution (the model's own
prediction, the teacher's, ...) and asks the model to agree with it. The record counts the targets'
argmax as pseudo-labels (:func:`pseudo_labels`), so their accuracy shows how good the targets are.
The consistency weight ramps up with the unlabeled batches drawn in the round (:mod:`sslzoo._ops.rampup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.strategy import EpochPlan, PseudoLabels, TrainOptions
from sslzoo._ops.augment import shift_and_noise
from sslzoo._ops.rampup import sigmoid_rampup
from sslzoo._strategies.pseudo import ArgmaxPseudoLabeler


def softmax_mse(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the samples and classes of ``(softmax(logits) - target)^2`` (the squared difference of
    the Π-model and the mean teacher); 0 for an empty batch."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return ((torch.softmax(logits.float(), dim=1) - target.float()) ** 2).mean()


def pseudo_labels(ids: torch.Tensor, probabilities: torch.Tensor) -> PseudoLabels:
    """The argmax of each id's target distribution, with its probability as confidence, for the record."""
    confidence, targets = probabilities.max(dim=1)
    return PseudoLabels(ids, targets, confidence)


class Consistency(ArgmaxPseudoLabeler):
    """Base of the consistency strategies: an unlabeled batch of ``unlabeled_batch_size`` pool ids at
    every step. Subclasses define ``Options`` with ``unlabeled_batch_size`` and ``rampup_steps`` and
    write ``loss``."""

    level = "step"

    def epoch_plan(self, ctx: Context) -> EpochPlan:
        return EpochPlan(int(self.options.unlabeled_batch_size))

    def rampup(self, ctx: Context) -> float:
        """The ramp-up factor in [0, 1] at this step: ``sigmoid_rampup`` of the unlabeled batches drawn
        before it in the round, over ``rampup_steps``."""
        return sigmoid_rampup(max(0, ctx.unlabeled_batches - 1), self.options.rampup_steps)


@dataclass
class NoisyViewsOptions(TrainOptions):
    """The options of the Π-model and the mean teacher, with their papers' defaults."""

    unlabeled_batch_size: int = field(default=100, metadata={"min": 1, "help": "unlabeled ids per step"})
    consistency: float = field(default=100.0, metadata={
        "min": 0.0, "help": "maximum weight of the consistency cost (reached at the end of the ramp-up)"})
    rampup_steps: int = field(default=40000, metadata={
        "min": 0, "help": "unlabeled batches over which the consistency weight ramps up as exp(-5(1-T)^2)"})
    shift: float = field(default=0.0625, metadata={
        "min": 0.0, "max": 0.5, "help": "each view shifts images by up to this fraction of their size (2 of 32 px)"})
    input_noise: float = field(default=0.15, metadata={
        "min": 0.0, "help": "std of the Gaussian noise added to each view's inputs"})


class NoisyViews(Consistency):
    """Consistency between noisy views of the same inputs: images shifted by up to ``shift`` of their
    size and Gaussian input noise of std ``input_noise`` (the Π-model's and the mean teacher's
    augmentation)."""

    def view(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        """One noisy view of a batch of inputs."""
        return shift_and_noise(x, ctx.generator, self.options.shift, self.options.input_noise)

    def student(self, ctx: Context, labeled: torch.Tensor, unlabeled: torch.Tensor | None) -> torch.Tensor:
        """The model's training logits of one noisy view of the labeled inputs and of the unlabeled ids'
        inputs, in one forward pass, labeled first."""
        x = self.view(ctx, labeled)
        if unlabeled is not None:
            x = torch.cat([x, self.view(ctx, ctx.x[unlabeled])])
        return ctx.model(x)
