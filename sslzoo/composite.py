"""Hybrid strategies by composition: ``A+B`` = active learner A queries, pseudo-labeler B auto-labels.

"Active learning plus auto-labeling" (e.g. ``least_confidence+self_training``): each round,
A's ``select`` picks pool ids for the oracle; B's ``select`` then accepts pseudo-labels from the
rest of the pool. In the step phase (per-step pseudo-labeling, e.g. ``entropy+pseudo_label``)
every hook is B's. Training options and round control (budget) are A's; ``loss`` is B's.
Works for any active-learning strategy with any pseudo-labeling one, third-party ones included.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import torch

from sslzoo.errors import OptionError
from sslzoo.options import options_dict
from sslzoo.strategy import ORACLE, Batch, EpochPlan, Labels, Strategy, TrainOptions

if TYPE_CHECKING:
    from sslzoo.context import Context

SEPARATOR = "+"


class Composite(Strategy):
    """``active+pseudo``: the union of two strategies' round-phase selections."""

    family = "hybrid"

    def __init__(self, active: Strategy, pseudo: Strategy) -> None:
        if active.family != "al":
            raise OptionError(f"in {active.name}{SEPARATOR}{pseudo.name}, the first part must be an active-"
                              f"learning strategy (family al); {active.name!r} is {active.family}")
        if pseudo.family != "ssl":
            raise OptionError(f"in {active.name}{SEPARATOR}{pseudo.name}, the second part must be a "
                              f"pseudo-labeling strategy (family ssl); {pseudo.name!r} is {pseudo.family}")
        self.active, self.pseudo = active, pseudo
        self.name = f"{active.name}{SEPARATOR}{pseudo.name}"  # type: ignore[misc]
        self.paper = f"{active.paper} + {pseudo.paper}"  # type: ignore[misc]
        self.summary = f"{active.name} queries the oracle, {pseudo.name} pseudo-labels the rest"  # type: ignore[misc]
        self._queried = torch.empty(0, dtype=torch.long)

    @property
    def options(self) -> Any:  # type: ignore[override]
        """The training options (A's) — what the engine trains with."""
        return self.active.options

    @options.setter
    def options(self, value: Any) -> None:
        self.active.options = value

    def parts(self) -> tuple[Strategy, ...]:
        return (self.active, self.pseudo)

    def resolved_options(self) -> dict[str, Any]:
        own = {f.name for f in dataclasses.fields(TrainOptions)}
        extra = {f"{self.pseudo.name}.{k}": v for k, v in options_dict(self.pseudo.options).items() if k not in own}
        return {**options_dict(self.active.options), **extra}

    # -- round control and plans ----------------------------------------------------------
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
