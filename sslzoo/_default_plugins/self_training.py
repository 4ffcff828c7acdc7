"""Self-training in rounds (Yarowsky 1995; scikit-learn's ``SelfTrainingClassifier``) on the engine.

Round 0 trains on the labeled set. Each later round predicts the pool (dropout off) and accepts

* ``criterion=threshold``: every sample whose max probability is at least ``threshold`` (0.8),
* ``criterion=k_best``: the ``k_best`` most confident samples,
* ``criterion=sample_rate``: the most confident ``sample_rate`` fraction of the pool (with
  ``per_class``, that fraction of each predicted class: class-balanced self-training, Zou et al. 2018),
* ``criterion=random``: the next ``sample_rate`` fraction of the first round's pool in a random
  order drawn once, whatever their confidence: each round draws ``ceil(sample_rate * n)`` new
  samples (``n``: the pool before the first round), so a drawn sample is never drawn again,
  accepted or not (the pseudo-labeling wrapper of Anirudh S's "Pseudo-Labeling to deal with small
  datasets", which draws the unlabeled data in random batches until all of it has been used),

minus, with ``reject_band`` LOW,HIGH, those whose confidence lies in [LOW, HIGH] (the same source
keeps the samples outside 0.4-0.6, the unsure and the very unsure ones alike), with its argmax as
a hard pseudo-label (Lee 2013) frozen in the ledger, then retrains on the labeled and
pseudo-labeled samples (from scratch or warm, ``retrain``). Optionally the pseudo-labeled images
are augmented in each batch (rotation ±10°, zoom ±10%, shift ±10%).

The run stops after ``max_rounds`` rounds of acceptance (``max_rounds``), when nothing passes
the criterion (``nothing_selected``) or when the pool is empty (``pool_empty``); the record's
``termination`` says which, as scikit-learn's ``termination_condition_``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.labels import PSEUDO, Labels
from sslzoo._contract.strategy import Step, TrainOptions, supervised_loss
from sslzoo._default_plugins.pseudo_label import LEE_2013
from sslzoo._ops.augment import random_affine
from sslzoo._strategies.pseudo import ArgmaxPseudoLabeler, argmax_labels
from sslzoo.errors import OptionError

CITATION = (
    "David Yarowsky. Unsupervised Word Sense Disambiguation Rivaling Supervised Methods. Proceedings of "
    "the 33rd Annual Meeting of the Association for Computational Linguistics (ACL), pp. 189-196, 1995; "
    "as scikit-learn's SelfTrainingClassifier (Pedregosa et al., Scikit-learn: Machine Learning in Python, "
    "JMLR 12:2825-2830, 2011); hard argmax pseudo-labels as in " + LEE_2013 + "; per_class: Yang Zou, "
    "Zhiding Yu, B. V. K. Vijaya Kumar, Jinsong Wang. Unsupervised Domain Adaptation for Semantic Segmentation "
    "via Class-Balanced Self-Training. ECCV 2018; criterion=random and reject_band: the pseudo-labeling wrapper of "
    "Anirudh S, Pseudo-Labeling to deal with small datasets - What, Why & How? (blog post and notebook)")


@dataclass
class SelfTrainingOptions(TrainOptions):
    threshold: float = field(default=0.8, metadata={
        "min": 0.0, "max": 1.0, "help": "criterion=threshold: accept pool samples with max probability >= this"})
    criterion: Literal["threshold", "k_best", "sample_rate", "random"] = field(default="threshold", metadata={
        "help": "which pool samples a round accepts"})
    k_best: int = field(default=10, metadata={"min": 1, "help": "criterion=k_best: the k most confident per round"})
    sample_rate: float = field(default=0.1, metadata={
        "min": 0.0, "max": 1.0, "help": "criterion=sample_rate: the most confident fraction of the pool per round; "
                                        "criterion=random: a random fraction of the first round's pool per round"})
    per_class: bool = field(default=False, metadata={
        "help": "criterion=sample_rate: accept that fraction of each predicted class, not of the whole pool"})
    reject_band: tuple[float, ...] = field(default=(), metadata={
        "help": "LOW,HIGH: never accept a sample whose confidence lies in [LOW, HIGH] (empty: no band)"})
    max_rounds: int = field(default=10, metadata={"min": 0, "help": "rounds of acceptance at most"})
    augment: bool = field(default=False, metadata={
        "help": "randomly rotate/zoom/shift the pseudo-labeled images in each batch (images only)"})
    weighting: Literal["1", "confidence"] = field(default="1", metadata={
        "help": "loss weight of a pseudo-label: 1, or its confidence"})

    def __post_init__(self) -> None:
        band = self.reject_band
        if band and (len(band) != 2 or not 0.0 <= band[0] <= band[1] <= 1.0):
            raise OptionError(f"option reject_band={','.join(map(str, band))} of strategy 'self_training' is not "
                              f"allowed: it must be LOW,HIGH with 0 <= LOW <= HIGH <= 1 (e.g. 0.4,0.6), or empty")


def top_fraction_per_class(confidence: torch.Tensor, targets: torch.Tensor, fraction: float,
                           num_classes: int) -> torch.Tensor:
    """Indices of the most confident ``ceil(fraction * n_c)`` samples of each predicted class c."""
    by_confidence = torch.argsort(confidence, descending=True, stable=True)
    order = by_confidence[torch.argsort(targets[by_confidence], stable=True)]  # by class, then confidence
    counts = torch.bincount(targets, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    sorted_targets = targets[order]
    rank = torch.arange(order.numel(), device=order.device) - starts[sorted_targets]
    quota = torch.ceil(fraction * counts.double()).long()
    return order[rank < quota[sorted_targets]]


class SelfTraining(ArgmaxPseudoLabeler):
    """Accept confident pool predictions as frozen pseudo-labels each round, then retrain."""

    name = "self_training"
    paper = CITATION
    summary = ("rounds of accepting argmax pseudo-labels (confident: threshold / k_best / sample_rate; or random "
               "draws), retrain")
    Options = SelfTrainingOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._undrawn: torch.Tensor | None = None  # criterion=random: the pool's random order, not yet drawn
        self._draw_size = 0

    def stop(self, ctx: Context) -> str | None:
        """``max_rounds`` once that many rounds of acceptance are done (round r follows r - 1 of them)."""
        return "max_rounds" if ctx.round - 1 >= self.options.max_rounds else None

    def select(self, ctx: Context, pool: torch.Tensor) -> torch.Tensor:
        """The pool samples the criterion accepts (possibly none); ``label`` gives them the model's argmax."""
        candidates = pool
        if candidates.numel() == 0:
            return candidates[:0]
        o = self.options
        if o.criterion == "random":
            candidates = self._draw(ctx, candidates)
        confidence, targets = argmax_labels(ctx, candidates)
        if o.criterion == "threshold":
            keep = torch.nonzero(confidence >= o.threshold).flatten()
        elif o.criterion == "random":
            keep = torch.arange(candidates.numel(), device=candidates.device)
        elif o.criterion == "sample_rate" and o.per_class:
            keep = top_fraction_per_class(confidence, targets, o.sample_rate, ctx.num_classes)
        else:
            n = candidates.numel()
            k = min(o.k_best, n) if o.criterion == "k_best" else min(n, math.ceil(o.sample_rate * n))
            keep = torch.topk(confidence, k, sorted=False).indices
        if o.reject_band:
            low, high = o.reject_band
            keep = keep[(confidence[keep] < low) | (confidence[keep] > high)]
        return candidates[keep]

    def _draw(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        """criterion=random: this round's draw, the next ``ceil(sample_rate * n)`` ids of a random order
        of the first round's pool (``n`` ids), less any that left the pool since (e.g. queried)."""
        if self._undrawn is None:
            order = torch.randperm(candidates.numel(), generator=ctx.generator, device=candidates.device)
            self._undrawn = candidates[order]
            self._draw_size = math.ceil(self.options.sample_rate * candidates.numel())
        drawn, self._undrawn = self._undrawn[:self._draw_size], self._undrawn[self._draw_size:]
        return drawn[torch.isin(drawn, candidates)]

    def weight(self, ctx: Context, labels: Labels) -> torch.Tensor:
        """1 per pseudo-label, or its confidence (``weighting=confidence``)."""
        if self.options.weighting == "confidence":
            return labels.confidence.clone()
        return torch.ones_like(labels.confidence)

    def loss(self, ctx: Context, step: Step) -> torch.Tensor:
        """The cross-entropy of the labeled batch, oracle labels and pseudo-labels alike; with
        ``augment``, each pseudo-labeled image of the batch randomly rotated, zoomed and shifted first."""
        batch = step.labeled
        if self.options.augment and batch.x.dim() == 4 and batch.ids.numel():
            pseudo = (batch.source == PSEUDO).view(-1, 1, 1, 1)
            batch = dataclasses.replace(batch, x=torch.where(pseudo, random_affine(batch.x, ctx.generator), batch.x))
        return supervised_loss(ctx, batch)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(SelfTraining)
