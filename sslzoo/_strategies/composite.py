"""Hybrid strategies by composition of an active learner A and a pseudo-labeler B.

``A+B``, "active learning plus auto-labeling" (e.g. ``least_confidence+self_training``): each
round, A selects pool ids for the oracle, then B selects pseudo-labels from the rest of the pool
(a round-level B), each with its own ``select``, ``label`` and ``weight``. The training steps are
B's (its ``epoch_plan`` and ``loss``: per-step pseudo-labeling, e.g. ``entropy+pseudo_label``).
Training options and round control (budget) are A's; the reported model is B's.

``A>B``, "active learning, then auto-labeling" (e.g. ``least_confidence>self_training``): A's
rounds until A stops (its budget is met), then B's rounds until B stops; B counts its rounds
from the switch (``max_rounds`` of B's own). B must pseudo-label in rounds (``level`` "round").

A composition pairs the two strategies; the engine asks it which parts select in a round
(:meth:`Composite.selectors`) and which part trains (:meth:`Composite.trainer`), and calls the
parts' hooks. Both work for any active learner with any pseudo-labeler, third-party ones included.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from sslzoo._contract.context import Context
from sslzoo._contract.strategy import Strategy, TrainOptions
from sslzoo.errors import OptionError

SEPARATOR = "+"  # A+B: both parts every round
THEN = ">"  # A>B: A's rounds, then B's
SEPARATORS = (SEPARATOR, THEN)


class Composite(Strategy):
    """``active+pseudo``: A's queries and B's pseudo-labels every round, B's training steps."""

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
        self.level = pseudo.level  # type: ignore[misc]

    @property
    def options(self) -> Any:
        """The training options (A's) — what the engine trains with."""
        return self.active.options

    def parts(self) -> tuple[Strategy, ...]:
        return (self.active, self.pseudo)

    def resolved_options(self) -> dict[str, Any]:
        own = {f.name for f in dataclasses.fields(TrainOptions)}
        extra = {f"{self.pseudo.name}.{k}": v for k, v in self.pseudo.resolved_options().items() if k not in own}
        return {**self.active.resolved_options(), **extra}

    # -- the pairing -----------------------------------------------------------------------
    def selectors(self, ctx: Context) -> tuple[Strategy, ...]:
        """The parts that select in this round, in order: each from what is left of the pool."""
        return (self.active, self.pseudo)

    def trainer(self) -> Strategy:
        """The part whose ``epoch_plan`` and ``loss`` make the training steps."""
        return self.pseudo

    def check(self, ctx: Context) -> None:
        self.active.check(ctx)
        self.pseudo.check(ctx)

    def stop(self, ctx: Context) -> str | None:
        return self.active.stop(ctx)

    def evaluated_model(self, ctx: Context) -> nn.Module:
        return self.pseudo.evaluated_model(ctx)


class Chain(Composite):
    """``active>pseudo``: A's rounds until A stops, then B's rounds until B stops."""

    separator = THEN

    def __init__(self, active: Strategy, pseudo: Strategy) -> None:
        super().__init__(active, pseudo)
        if pseudo.level == "step":
            raise OptionError(f"in {self.name}, {pseudo.name!r} pseudo-labels at every step, not in rounds; "
                              f"run it alongside the active learner with {active.name}{SEPARATOR}{pseudo.name}")
        self.summary = f"{active.name} queries the oracle until its budget, then {pseudo.name} pseudo-labels"  # type: ignore[misc]
        self.switched_at: int | None = None  # the last round of A's phase

    def current(self) -> Strategy:
        """The part whose round it is: A until the switch, B after."""
        return self.active if self.switched_at is None else self.pseudo

    def selectors(self, ctx: Context) -> tuple[Strategy, ...]:
        return (self.current(),)

    def stop(self, ctx: Context) -> str | None:
        """A's stop until it gives a reason (the switch), then B's, asked with B's own round count."""
        if self.switched_at is None:
            if self.active.stop(ctx) is None:
                return None
            self.switched_at = ctx.round - 1
        return self.pseudo.stop(dataclasses.replace(ctx, round=ctx.round - self.switched_at))

    def evaluated_model(self, ctx: Context) -> nn.Module:
        return self.current().evaluated_model(ctx)


def selectors(strategy: Strategy, ctx: Context) -> tuple[Strategy, ...]:
    """The strategies that select in this round: a composition's parts, or the strategy itself."""
    return strategy.selectors(ctx) if isinstance(strategy, Composite) else (strategy,)


def trainer(strategy: Strategy) -> Strategy:
    """The strategy whose ``epoch_plan`` and ``loss`` train: a composition's pseudo-labeler, or itself."""
    return strategy.trainer() if isinstance(strategy, Composite) else strategy
