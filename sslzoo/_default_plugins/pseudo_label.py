"""Pseudo-Label (Lee 2013): train on the model's own argmax labels for unlabeled batches.

Each optimizer step draws an unlabeled batch from the pool; its pseudo-labels are the argmax of
the current model with dropout off and no gradient, recomputed at every step; the loss is

    CE(labeled) + alpha(t) · CE(unlabeled, pseudo-labels)

with alpha(t) = 0 before T1, rising linearly to alpha_f at T2 and constant after.

Two schedules:

* ``schedule=epoch`` (the paper): t is the epoch (fractional within an epoch), every step is one
  labeled batch plus one unlabeled batch; T1=100, T2=600, alpha_f=3. Epochs that end before T1
  skip the unlabeled batches (alpha is 0 there anyway).
* ``schedule=step`` (the widely used re-implementation): ``warmup`` supervised epochs (100) come
  first; then an epoch is one pass over the pool in unlabeled-only steps, with a full labeled
  pass after every ``labeled_every`` (50) unlabeled batches; t is a counter that starts at T1
  and advances once per ``labeled_every`` unlabeled batches; T1=100, T2=700, alpha_f=3. With
  ``labeled_first`` the labeled pass comes after the 1st, (N+1)th, ... unlabeled batch of each
  epoch instead, and t advances once per labeled pass, as the re-implementation's code has it
  (``if batch_idx % 50 == 0``).

t is read from the context (:attr:`Context.progress`, :attr:`Context.unlabeled_batches`,
:attr:`Context.labeled_passes`), so the strategy keeps no counter of its own.

The paper's T1 is 100 epochs: for a short run scale it down (``-o t1=5 -o t2=15``).

``sslzoo report`` draws alpha(t) beside the accuracy of a run against its epochs (the
``report_series`` hook).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import (
    EpochPlan,
    PseudoLabels,
    Step,
    StepLoss,
    TrainOptions,
    supervised_loss,
    weighted_cross_entropy,
)
from sslzoo._ops.prefix import SharedPrefix
from sslzoo._strategies.pseudo import ArgmaxPseudoLabeler
from sslzoo.errors import OptionError

LEE_2013 = ("Dong-Hyun Lee. Pseudo-Label: The Simple and Efficient Semi-Supervised Learning Method for "
            "Deep Neural Networks. ICML 2013 Workshop on Challenges in Representation Learning, 2013.")

# schedule-dependent defaults of the options left at None
T2_DEFAULT = {"epoch": 600.0, "step": 700.0}
WARMUP_DEFAULT = {"epoch": 0, "step": 100}


def alpha(t: float, t1: float, t2: float, alpha_f: float) -> float:
    """Lee's balancing coefficient: 0 for t < t1, linear from 0 to ``alpha_f`` on [t1, t2], then ``alpha_f``."""
    if t < t1:
        return 0.0
    if t >= t2:
        return float(alpha_f)
    return (t - t1) / (t2 - t1) * alpha_f


@dataclass
class PseudoLabelOptions(TrainOptions):
    t1: float = field(default=100.0, metadata={
        "min": 0.0, "help": "alpha is 0 before t1 (epochs; with schedule=step, the step counter's start)"})
    t2: float | None = field(default=None, metadata={
        "min": 0.0, "help": "alpha reaches alpha_f at t2 (default: 600 for schedule=epoch, 700 for step)"})
    alpha_f: float = field(default=3.0, metadata={"min": 0.0, "help": "final weight of the unlabeled loss"})
    unlabeled_batch_size: int = field(default=256, metadata={"min": 1, "help": "unlabeled ids per step"})
    schedule: Literal["epoch", "step"] = field(default="epoch", metadata={
        "help": "epoch: the paper's joint steps, t in epochs; step: unlabeled-only steps, a labeled pass "
                "every labeled_every of them, t a counter"})
    labeled_every: int = field(default=50, metadata={
        "min": 1, "help": "schedule=step: a labeled pass (and t + 1) after every N unlabeled batches"})
    warmup: int | None = field(default=None, metadata={
        "min": 0, "help": "supervised-only epochs first (default: 0 for schedule=epoch, 100 for step)"})
    threshold: float = field(default=0.0, metadata={
        "min": 0.0, "max": 1.0, "help": "use only pseudo-labels whose confidence is at least this (0: all)"})
    labeled_first: bool = field(default=False, metadata={
        "help": "schedule=step: the labeled pass after the 1st, (N+1)th, ... unlabeled batch of each epoch (the "
                "re-implementation's batch_idx % N == 0) and t + 1 per labeled pass"})


class PseudoLabel(ArgmaxPseudoLabeler):
    """Lee (2013): the model's argmax on each unlabeled batch is its target; the loss is
    ``CE(labeled) + alpha(t) · CE(unlabeled, pseudo-labels)``."""

    name = "pseudo_label"
    level = "step"
    paper = LEE_2013
    summary = "per-step argmax pseudo-labels on unlabeled batches, loss CE_l + alpha(t)·CE_u"
    Options = PseudoLabelOptions

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        o = self.options
        fills = {"t2": T2_DEFAULT[o.schedule] if o.t2 is None else o.t2,
                 "warmup": WARMUP_DEFAULT[o.schedule] if o.warmup is None else o.warmup}
        if fills["t2"] < o.t1:
            raise OptionError(f"option t2={fills['t2']} of strategy {self.name!r} is not allowed: "
                              f"it must be at least t1={o.t1}")
        self.options = dataclasses.replace(o, **fills)

    # -- the epoch's shape -----------------------------------------------------------------
    def epoch_plan(self, ctx: Context) -> EpochPlan:
        o = self.options
        if ctx.epoch == 0:
            first = o.warmup if o.schedule == "step" else max(o.warmup, o.t1)
            if ctx.epochs <= first:
                warnings.warn(f"pseudo_label: {ctx.epochs} epochs end before the unlabeled data is used "
                              f"(t1={o.t1:g}, warmup={o.warmup}, schedule={o.schedule}); this is supervised "
                              f"training: raise epochs or scale t1/t2 down", stacklevel=2)
        if ctx.epoch < o.warmup:
            return EpochPlan(0)
        if o.schedule == "step":
            return EpochPlan(o.unlabeled_batch_size, o.labeled_every, o.labeled_first)
        if ctx.epoch + 1 <= o.t1:  # alpha is 0 for the whole epoch: the unlabeled batch cannot matter
            return EpochPlan(0)
        return EpochPlan(o.unlabeled_batch_size)

    def current_t(self, ctx: Context) -> float:
        """Where the alpha schedule stands at the current step: epochs (schedule=epoch) or the step
        counter (schedule=step): T1 plus the labeled passes since the warm-up (``labeled_first``), or
        else plus one per ``labeled_every`` unlabeled batches drawn before this one."""
        o = self.options
        if o.schedule == "epoch":
            return ctx.progress
        if o.labeled_first:
            return o.t1 + ctx.labeled_passes - o.warmup  # one labeled pass per warm-up epoch
        return o.t1 + max(0, ctx.unlabeled_batches - 1) // o.labeled_every

    # -- the objective ---------------------------------------------------------------------
    def loss(self, ctx: Context, step: Step) -> torch.Tensor | StepLoss:
        """Lee's eq. (15): ``CE(labeled) + alpha(t) · CE(unlabeled, pseudo-labels)``, the pseudo-labels
        being the argmax of the model (dropout off, no gradient) on the unlabeled batch, those below
        ``threshold`` dropped; alpha(t) scales the unlabeled samples' weights.

        In an unlabeled-only step without a threshold, the prediction and the training forward pass
        share the model's mode-free leading layers (:mod:`sslzoo._ops.prefix`). A threshold costs one host
        sync per step (the number kept); without one there is none.
        """
        labeled, unlabeled = step.labeled, step.unlabeled
        if unlabeled is None:
            return supervised_loss(ctx, labeled)
        o = self.options
        x = ctx.x[unlabeled]
        shared = SharedPrefix(ctx.model, ctx.precision) if labeled.ids.numel() == 0 else None
        if shared is not None and not shared.shares:
            shared = None
        # pseudo-labels: the argmax of the model's prediction, dropout off, no gradient
        confidence, targets = (shared.probabilities(x) if shared else ctx.predict(unlabeled)).max(dim=1)
        keep = confidence >= o.threshold if o.threshold > 0 else None
        kept_targets, kept_confidence = targets, confidence
        if keep is not None:
            x, kept_targets, kept_confidence = x[keep], targets[keep], confidence[keep]
        logits = shared.logits() if shared and keep is None else ctx.model(torch.cat([labeled.x, x]))
        n = labeled.ids.numel()
        weights = torch.ones_like(kept_confidence) * alpha(self.current_t(ctx), o.t1, o.t2, o.alpha_f)
        loss = (weighted_cross_entropy(logits[:n], labeled.targets, labeled.weights, ctx.activation)
                + weighted_cross_entropy(logits[n:], kept_targets, weights, ctx.activation))
        return StepLoss(loss, PseudoLabels(unlabeled, targets, confidence, keep))


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(PseudoLabel)


def alpha_schedule(options: Mapping[str, Any], epochs: float) -> tuple[list[float], list[float]] | None:
    """alpha(t) over epochs 0..``epochs`` for the paper's epoch schedule, from a record's ``options``
    (``t1``, ``t2``, ``alpha_f``, ``schedule``, or ``NAME.t1`` ... of a composition); None for other schedules."""
    values: dict[str, Any] = {}
    for key, value in options.items():
        values.setdefault(key.rpartition(".")[2], value)
    if (values.get("schedule") or "epoch") != "epoch":
        return None
    t1, t2, alpha_f = values.get("t1"), values.get("t2"), values.get("alpha_f")
    if not (isinstance(t1, (int, float)) and isinstance(t2, (int, float)) and isinstance(alpha_f, (int, float))):
        return None
    xs = sorted({0.0, float(epochs), *(t for t in (float(t1), float(t2)) if 0 <= t <= epochs)})
    return xs, [alpha(x, t1, t2, alpha_f) for x in xs]


@hookimpl
def report_series(record: dict[str, Any]) -> dict[str, Any] | None:
    """alpha(t) beside the accuracy of a record whose strategy has Lee 2013's options ``t1``, ``t2`` and
    ``alpha_f`` (directly or ``NAME.t1``), over the epochs the run trained; a note instead with
    ``schedule=step``, whose t counts unlabeled batches, which depend on the pool size."""
    options = record.get("options") or {}
    if not {"t1", "t2", "alpha_f"} <= {key.rpartition(".")[2] for key in options}:
        return None
    series: dict[str, Any] = {"name": "pseudo_schedule", "title": "Pseudo-labeling", "label": "alpha(t)"}
    epochs = sum(float(e.get("epochs") or 0) for e in record.get("curve") or []
                 if e.get("epoch") is None or e.get("epoch") == e.get("epochs"))
    schedule = alpha_schedule(options, epochs)
    if schedule is None:
        name = next((v for k, v in options.items() if k.rpartition(".")[2] == "schedule"), None)
        return {**series, "note": f"alpha(t) is not drawn (with schedule={name!r} t counts unlabeled batches, "
                                  f"which depend on the pool size)"}
    return {**series, "points": [list(point) for point in zip(*schedule)]}
