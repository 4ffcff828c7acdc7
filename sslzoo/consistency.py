"""Consistency regularisation: the shared base of the strategies whose unlabeled loss asks the model
to agree with a target for the same input (the Π-model, the mean teacher, VAT).

Each optimizer step joins an unlabeled batch from the pool to the labeled batch; ``select`` takes
the whole batch and ``label`` gives each of its ids the strategy's target distribution (the
model's own prediction, the teacher's, ...). The record counts the targets' argmax as pseudo-labels,
so their accuracy shows how good the targets are; the loss uses the distributions, which
``soft_targets`` hands back without a second forward pass. The consistency weight ramps up with
the unlabeled batches drawn in the round (:mod:`sslzoo.rampup`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from sslzoo.augment import shift_and_noise
from sslzoo.pseudo import ArgmaxPseudoLabeler
from sslzoo.rampup import sigmoid_rampup
from sslzoo.strategy import Batch, Labels, TrainOptions

if TYPE_CHECKING:
    from sslzoo.context import Context


def softmax_mse(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the samples and classes of ``(softmax(logits) - target)^2`` (the squared difference of
    the Π-model and the mean teacher); 0 for an empty batch."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return ((torch.softmax(logits.float(), dim=1) - target.float()) ** 2).mean()


def joined(labeled: Batch, unlabeled: Batch | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ids and training logits of both batches of a step, labeled first."""
    assert labeled.logits is not None
    if unlabeled is None:
        return labeled.ids, labeled.logits
    assert unlabeled.logits is not None
    return torch.cat([labeled.ids, unlabeled.ids]), torch.cat([labeled.logits, unlabeled.logits])


class Consistency(ArgmaxPseudoLabeler):
    """Base of the consistency strategies: the whole unlabeled batch every step, labeled with the
    target distribution of :meth:`predict_targets`. Subclasses define ``Options`` with
    ``unlabeled_batch_size`` and ``rampup_steps`` and write ``loss``."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._soft: tuple[torch.Tensor, torch.Tensor] | None = None

    def unlabeled_batch_size(self) -> int:
        return int(self.options.unlabeled_batch_size)

    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        """Step phase: the whole unlabeled batch; round phase: nothing."""
        return candidates if ctx.phase == "step" else candidates[:0]

    def predict_targets(self, ctx: Context, ids: torch.Tensor) -> torch.Tensor:
        """The target distribution (k, C) of ``ids``, without gradient. Default: the model's
        prediction, dropout off (``ctx.predict``)."""
        return ctx.predict(ids)

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        """The argmax of each id's target distribution, with its probability as confidence."""
        if ids.numel() == 0:
            return Labels.pseudo(ids, ids.new_zeros(0), torch.zeros(0, device=ids.device))
        probabilities = self.predict_targets(ctx, ids)
        self._soft = (ids, probabilities)
        confidence, targets = probabilities.max(dim=1)
        return Labels.pseudo(ids, targets, confidence)

    def soft_targets(self, ctx: Context, ids: torch.Tensor) -> torch.Tensor:
        """The target distributions ``label`` computed for ``ids`` (the same tensor), or new ones."""
        if self._soft is not None and self._soft[0] is ids:
            return self._soft[1]
        return self.predict_targets(ctx, ids)

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
    augmentation); the model trains on one view of every batch (``transform``)."""

    def view(self, ctx: Context, x: torch.Tensor) -> torch.Tensor:
        """One noisy view of a batch of inputs."""
        return shift_and_noise(x, ctx.generator, self.options.shift, self.options.input_noise)

    def transform(self, ctx: Context, batch: Batch) -> Batch:
        return dataclasses.replace(batch, x=self.view(ctx, batch.x))
