"""Hybrid strategies by composition of an active learner A and a pseudo-labeler B.

``A+B``, "active learning plus auto-labeling" (e.g. ``least_confidence+self_training``): each
round, A's ``select`` picks pool ids for the oracle; B's ``select`` then accepts pseudo-labels
from the rest of the pool. In the step phase (per-step pseudo-labeling, e.g.
``entropy+pseudo_label``) every hook is B's. Training options and round control (budget) are
A's; ``loss`` is B's.

``A>B``, "active learning, then auto-labeling" (e.g. ``least_confidence>self_training``): A's
rounds until A stops (its budget is met), then B's rounds until B stops; B counts its rounds
from the switch (``max_rounds`` of B's own). B must pseudo-label in rounds (no step phase).

Both work for any active-learning strategy with any pseudo-labeling one, third-party ones included.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from sslzoo.errors import OptionError
from sslzoo.options import options_dict
from sslzoo.strategy import ORACLE, Batch, EpochPlan, Labels, Strategy, TrainOptions

if TYPE_CHECKING:
    from sslzoo.context import Context

SEPARATOR = "+"  # A+B: both parts every round
THEN = ">"  # A>B: A's rounds, then B's
SEPARATORS = (SEPARATOR, THEN)


class Composite(Strategy):
    """``active+pseudo``: the union of two strategies' round-phase selections."""

    family = "hybrid"
    separator = SEPARATOR

    def __init__(self, active: Strategy, pseudo: Strategy) -> None:
        name = f"{active.name}{self.separator}{pseudo.name}"
        if active.family != "al":
            raise OptionError(f"in {name}, the first part must be an active-learning strategy (family al); "
                              f"{active.name!r} is {active.family}")
        if pseudo.family != "ssl":
            raise OptionError(f"in {name}, the second part must be a pseudo-labeling strategy (family ssl); "
                              f"{pseudo.name!r} is {pseudo.family}")
        self.active, self.pseudo = active, pseudo
        self.name = name  # type: ignore[misc]
        self.paper = f"{active.paper} + {pseudo.paper}"  # type: ignore[misc]
        self.summary = f"{active.name} queries the oracle, {pseudo.name} pseudo-labels the rest"  # type: ignore[misc]
        self._queried = torch.empty(0, dtype=torch.long)

    @property
    def options(self) -> Any:
        """The training options (A's) — what the engine trains with."""
        return self.active.options

    def parts(self) -> tuple[Strategy, ...]:
        return (self.active, self.pseudo)

    def resolved_options(self) -> dict[str, Any]:
        own = {f.name for f in dataclasses.fields(TrainOptions)}
        extra = {f"{self.pseudo.name}.{k}": v for k, v in options_dict(self.pseudo.options).items() if k not in own}
        return {**options_dict(self.active.options), **extra}

    # -- round control and plans ----------------------------------------------------------
    def check(self, ctx: Context) -> None:
        self.active.check(ctx)
        self.pseudo.check(ctx)

    def stop(self, ctx: Context) -> str | None:
        return self.active.stop(ctx)

    def query_count(self, ctx: Context, n_candidates: int) -> int:
        return self.active.query_count(ctx, n_candidates)

    def unlabeled_batch_size(self) -> int:
        return self.pseudo.unlabeled_batch_size()

    def epoch_plan(self, ctx: Context) -> EpochPlan:
        return self.pseudo.epoch_plan(ctx)

    def transform(self, ctx: Context, batch: Batch) -> Batch:
        return self.pseudo.transform(ctx, batch)

    # -- the four hooks --------------------------------------------------------------------
    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        if ctx.phase == "step":
            return self.pseudo.select(ctx, candidates)
        queried = self.active.select(ctx, candidates)
        rest = candidates[~torch.isin(candidates, queried)]
        accepted = self.pseudo.select(ctx, rest) if rest.numel() else rest
        self._queried = queried
        return torch.cat([queried, accepted])

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        if ctx.phase == "step":
            return self.pseudo.label(ctx, ids)
        queried = torch.isin(ids, self._queried)
        return self.active.label(ctx, ids[queried]).cat(self.pseudo.label(ctx, ids[~queried]))

    def weight(self, ctx: Context, labels: Labels) -> torch.Tensor:
        if ctx.phase == "step":
            return self.pseudo.weight(ctx, labels)
        weights = torch.empty_like(labels.confidence)
        oracle = labels.source == ORACLE
        weights[oracle] = self.active.weight(ctx, labels.subset(oracle))
        weights[~oracle] = self.pseudo.weight(ctx, labels.subset(~oracle))
        return weights

    def loss(self, ctx: Context, labeled: Batch, unlabeled: Batch | None) -> torch.Tensor:
        return self.pseudo.loss(ctx, labeled, unlabeled)

    def evaluated_model(self, ctx: Context) -> nn.Module:
        return self.pseudo.evaluated_model(ctx)


class Chain(Composite):
    """``active>pseudo``: A's rounds until A stops, then B's rounds until B stops."""

    separator = THEN

    def __init__(self, active: Strategy, pseudo: Strategy) -> None:
        super().__init__(active, pseudo)
        if pseudo.unlabeled_batch_size() > 0:
            raise OptionError(f"in {self.name}, {pseudo.name!r} pseudo-labels at every step, not in rounds; "
                              f"run it alongside the active learner with {active.name}{SEPARATOR}{pseudo.name}")
        self.summary = f"{active.name} queries the oracle until its budget, then {pseudo.name} pseudo-labels"  # type: ignore[misc]
        self.switched_at: int | None = None  # the last round of A's phase

    def current(self) -> Strategy:
        """The part whose round it is: A until the switch, B after."""
        return self.active if self.switched_at is None else self.pseudo

    def stop(self, ctx: Context) -> str | None:
        """A's stop until it gives a reason (the switch), then B's, asked with B's own round count."""
        if self.switched_at is None:
            if self.active.stop(ctx) is None:
                return None
            self.switched_at = ctx.round - 1
        own = ctx.round
        ctx.round = own - self.switched_at
        try:
            return self.pseudo.stop(ctx)
        finally:
            ctx.round = own

    def query_count(self, ctx: Context, n_candidates: int) -> int:
        return self.current().query_count(ctx, n_candidates)

    def select(self, ctx: Context, candidates: torch.Tensor) -> torch.Tensor:
        return self.current().select(ctx, candidates)

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        return self.current().label(ctx, ids)

    def weight(self, ctx: Context, labels: Labels) -> torch.Tensor:
        return self.current().weight(ctx, labels)

    def evaluated_model(self, ctx: Context) -> nn.Module:
        return self.current().evaluated_model(ctx)
