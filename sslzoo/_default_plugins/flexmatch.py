"""FlexMatch (Zhang et al. 2021): FixMatch with curriculum pseudo-labeling, a threshold per class.

The threshold of class c moves with how well the model has learned c, estimated without labels by
its learning effect σ_c: the number of unlabeled ids whose latest confident prediction (top
probability ≥ τ = 0.95) was c. Normalised by the largest of them it gives β_c; with the threshold
warm-up the ids not yet predicted confidently count as one more "class" in that maximum, so that
every β_c stays small while they are the majority. The flexible threshold maps β_c by the convex
function M(x) = x / (2 − x): ``T_c = M(β_c) · τ``. An unlabeled id whose weak view's top class is c
is kept when its probability reaches T_c; the loss is then FixMatch's
(:mod:`sslzoo._default_plugins.adaptive`). At the start β is 0, so every id is kept.

The port follows USB's ``FlexMatchThresholdingHook``: the mask is taken with the β of the previous
step, then the ids predicted with confidence ≥ τ record their class and β is recomputed. Where
sslzoo differs: the learning status covers the unlabeled pool, not the labeled ids too (USB's
unlabeled set holds every training image); composed with an active learner the ids that leave the
pool are forgotten at the next round. USB counts the status in Python every step; here it is a
``bincount`` on the device, with the same result and no host sync. USB's option of soft targets
(``hard_label=False``, which there trains on the unsharpened probabilities) is left out: the
paper's targets are hard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._default_plugins.adaptive import USB_2022, AdaptiveMatch, AdaptiveOptions, Guess
from sslzoo.errors import OptionError

ZHANG_2021 = ("Bowen Zhang, Yidong Wang, Wenxin Hou, Hao Wu, Jindong Wang, Manabu Okumura, Takahiro Shinozaki. "
              "FlexMatch: Boosting Semi-Supervised Learning with Curriculum Pseudo Labeling. Advances in Neural "
              "Information Processing Systems 34 (NeurIPS), 2021; reference code: " + USB_2022)


@dataclass
class FlexMatchOptions(AdaptiveOptions):
    threshold: float = field(default=0.95, metadata={
        "min": 0.0, "max": 1.0, "help": "tau: the threshold of a fully learned class, and the confidence that counts "
                                        "an id as learned (greater than 0)"})
    threshold_warmup: bool = field(default=True, metadata={
        "help": "count the ids not yet predicted confidently as a class of their own when normalising the learning "
                "effects"})

    def __post_init__(self) -> None:
        if self.threshold <= 0:
            raise OptionError(f"option threshold={self.threshold} of strategy 'flexmatch' is not allowed: it must "
                              f"be greater than 0 and at most 1")


class LearningStatus:
    """Per id of the pool the class of its latest prediction with confidence ≥ τ (-1: none yet), and
    the normalised learning effect β of each class."""

    def __init__(self, n_ids: int, num_classes: int, device: torch.device) -> None:
        self.selected = torch.full((n_ids,), -1, dtype=torch.long, device=device)
        self.beta = torch.zeros(num_classes, device=device)
        self.pool_size = n_ids

    def restrict(self, pool: torch.Tensor) -> None:
        """Forget the ids outside ``pool``: the status counts the pool's ids only."""
        outside = torch.ones_like(self.selected, dtype=torch.bool)
        outside[pool] = False
        self.selected[outside] = -1
        self.pool_size = int(pool.numel())

    def mask(self, probs: torch.Tensor, ids: torch.Tensor, threshold: float, warmup: bool) -> torch.Tensor:
        """Which of ``ids`` (weak-view probabilities ``probs``) pass their class's flexible threshold
        ``M(β_c) · τ``; then record the confident ones' classes and update β."""
        confidence, classes = probs.max(dim=-1)
        beta = self.beta[classes]
        mask = confidence >= threshold * (beta / (2.0 - beta))
        self.selected[ids] = torch.where(confidence >= threshold, classes, self.selected[ids])
        self._update(warmup)
        return mask

    def _update(self, warmup: bool) -> None:
        counts = torch.bincount(self.selected + 1, minlength=self.beta.numel() + 1)
        unused = counts[0] - (self.selected.numel() - self.pool_size)  # the pool's ids with no status yet
        learned = counts[1:]
        largest = torch.maximum(learned.max(), unused)
        denominator = (largest if warmup else learned.max()).clamp_min(1)
        self.beta = torch.where(largest < self.pool_size, learned / denominator, self.beta)


class FlexMatch(AdaptiveMatch):
    """Zhang et al. (2021): FixMatch with a threshold per class that rises as the class is learned."""

    name = "flexmatch"
    paper = ZHANG_2021
    summary = "FixMatch with curriculum pseudo-labeling: per-class thresholds from each class's learning status"
    Options = FlexMatchOptions
    status: LearningStatus

    def start(self, ctx: Context, fresh: bool) -> None:
        """A new model starts with no status; each round counts the current pool."""
        if fresh:
            self.status = LearningStatus(ctx.x.shape[0], ctx.num_classes, ctx.device)
        self.status.restrict(ctx.pool_ids())

    def guess(self, ctx: Context, ids: torch.Tensor, probs: torch.Tensor) -> Guess:
        """The top class, kept (weight 1) where its probability reaches its class's flexible threshold."""
        o = self.options
        mask = self.status.mask(probs, ids, o.threshold, o.threshold_warmup)
        return Guess(probs.max(dim=-1).indices, mask.float())


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(FlexMatch)
