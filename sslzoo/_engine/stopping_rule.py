"""A run's stopping criterion as the engine asks it after each round (the ``stop`` option)."""

from __future__ import annotations

from typing import Any

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.options import options_dict
from sslzoo._contract.registry import Registry
from sslzoo._contract.stopping import Predictions, StoppingCriterion, parse_stop
from sslzoo.errors import OptionError


class Stopping:
    """A run's stopping criterion as the engine asks it: built from the ``stop`` option's text
    against the registry (an unknown name or a bad option fails here, before any training), then
    asked after each round (:meth:`ask`)."""

    def __init__(self, registry: Registry, text: str, where: str) -> None:
        name, given = parse_stop(text)
        if not name:
            raise OptionError(f"option stop={text!r} of {where} names no stopping criterion; give NAME[:KEY=VALUE,...] "
                              f"(sslzoo stopping-criteria lists them)")
        cls = registry.stopping_criteria.get(name).obj
        self.criterion: StoppingCriterion = cls(**given)
        self.stopped: dict[str, Any] | None = None
        self._ids: torch.Tensor | None = None

    def watched(self, ctx: Context) -> torch.Tensor:
        """The ids the criterion sees now: the pool, or its stop set (drawn at the first call)."""
        size = self.criterion.options.stop_set
        if size == 0:
            return ctx.pool_ids()
        if self._ids is None:
            pool = ctx.pool_ids()
            generator = torch.Generator().manual_seed(ctx.seed)
            self._ids = pool[torch.randperm(pool.numel(), generator=generator)[:size].to(pool.device)]
        return self._ids

    def ask(self, ctx: Context) -> str | None:
        """After round ``ctx.round - 1``: ``"stop:NAME"`` when the criterion fires (and :attr:`stopped`
        says which round's model fired it, with how many oracle labels, and why), else None."""
        ids = self.watched(ctx)
        if ids.numel() == 0:  # nothing left to judge: the engine stops on the empty pool
            return None
        seen = Predictions(ctx.round - 1, ids, ctx.predict(ids).float())
        why = self.criterion.check(seen)
        if why is None:
            return None
        name = self.criterion.name
        self.stopped = {"criterion": name, "options": options_dict(self.criterion.options), "round": seen.round,
                        "labels": ctx.n_labeled, "why": why}
        return f"stop:{name}"
