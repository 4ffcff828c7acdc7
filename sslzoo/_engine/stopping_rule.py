"""A run's stopping criteria as the engine asks them after each round: the one that ends the run (the
``stop`` option) and those it only watches (the ``watch`` option, for the stopping study)."""

from __future__ import annotations

from typing import Any

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.options import options_dict
from sslzoo._contract.registry import Registry
from sslzoo._contract.stopping import Predictions, StoppingCriterion, parse_stop
from sslzoo.errors import OptionError

WATCH_SEPARATOR = ";"
"""Separates the criteria of the ``watch`` option."""


class Stopping:
    """A run's stopping criterion as the engine asks it: built from the text of its ``option`` (``stop``
    or ``watch``) against the registry (an unknown name or a bad option fails here, before any
    training), then asked after each round (:meth:`ask`)."""

    def __init__(self, registry: Registry, text: str, where: str, option: str = "stop") -> None:
        name, given = parse_stop(text)
        if not name:
            raise OptionError(f"option {option}={text!r} of {where} names no stopping criterion; give "
                              f"NAME[:KEY=VALUE,...] (sslzoo stopping-criteria lists them)")
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

    def ask(self, ctx: Context, predicted: dict[int, torch.Tensor] | None = None) -> str | None:
        """After round ``ctx.round - 1``: ``"stop:NAME"`` when the criterion fires (and :attr:`stopped`
        says which round's model fired it, with how many oracle labels, and why), else None.

        ``predicted``: the probabilities the criteria of this run asked after this round have had, by
        ``stop_set``; criteria with the same ``stop_set`` watch the same ids (drawn at the same first
        check with the same seed), so each set is predicted once a round."""
        ids = self.watched(ctx)
        if ids.numel() == 0:  # nothing left to judge: the engine stops on the empty pool
            return None
        size = self.criterion.options.stop_set
        probs = predicted.get(size) if predicted is not None else None
        if probs is None:
            probs = ctx.predict(ids).float()
            if predicted is not None:
                predicted[size] = probs
        seen = Predictions(ctx.round - 1, ids, probs)
        why = self.criterion.check(seen)
        if why is None:
            return None
        name = self.criterion.name
        self.stopped = {"criterion": name, "options": options_dict(self.criterion.options), "round": seen.round,
                        "labels": ctx.n_labeled, "why": why}
        return f"stop:{name}"

    def entry(self) -> dict[str, Any]:
        """The record's entry: :attr:`stopped` once the criterion fired, else its name and options with
        ``round``, ``labels`` and ``why`` None."""
        return self.stopped or {"criterion": self.criterion.name, "options": options_dict(self.criterion.options),
                                "round": None, "labels": None, "why": None}


class Watching:
    """The criteria of the ``watch`` option (``NAME[:KEY=VALUE,...]`` separated by ``;``), each built
    and checked as ``stop`` is and asked after the same rounds with the same stop-set draw, none
    ending the run. Only a criterion's first firing counts: once it fired it is not asked again."""

    def __init__(self, registry: Registry, text: str, where: str) -> None:
        parts = [part.strip() for part in text.split(WATCH_SEPARATOR) if part.strip()]
        if not parts:
            raise OptionError(f"option watch={text!r} of {where} names no stopping criterion; give "
                              f"NAME[:KEY=VALUE,...], several separated by {WATCH_SEPARATOR!r} (sslzoo "
                              f"stopping-criteria lists them)")
        twice = next((part for i, part in enumerate(parts) if part in parts[:i]), None)
        if twice is not None:
            raise OptionError(f"option watch={text!r} of {where} names {twice!r} twice; watch each criterion "
                              f"(with its options) once")
        self.criteria = [Stopping(registry, part, where, "watch") for part in parts]

    def ask(self, ctx: Context, predicted: dict[int, torch.Tensor]) -> None:
        """After round ``ctx.round - 1``: ask every criterion that has not fired yet (``predicted``: as
        :meth:`Stopping.ask` shares it)."""
        for criterion in self.criteria:
            if criterion.stopped is None:
                criterion.ask(ctx, predicted)

    def entries(self) -> list[dict[str, Any]]:
        """The record's ``watched``: one :meth:`Stopping.entry` per criterion, in the order given."""
        return [criterion.entry() for criterion in self.criteria]
