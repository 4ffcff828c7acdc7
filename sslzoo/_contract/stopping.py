"""Stopping criteria: when further labels stop paying, judged from the model's predictions alone.

An active learner stops at its budget or when the pool is empty. A stopping criterion ends it
earlier: after each round it looks at the class probabilities the round's model gives on a set of
unlabeled ids and says whether to stop. Criteria are registered by name like strategies (the
``register_stopping_criteria`` hook: a plugin can add one), listed by ``sslzoo stopping-criteria``
and chosen with the training option ``stop`` (``sslzoo bench --stop NAME[:KEY=VALUE,...]``). The
record's ``termination`` is then ``stop:NAME`` and its ``stopped`` entry says which round's model
fired it, with how many oracle labels, and why.

A criterion sees what a strategy may see: the model's predictions on training ids, never a label
the oracle has not given (the run's learner holds none). Which ids it sees is its option
``stop_set``: 0 watches the unlabeled pool as it is after each round (Zhu et al. 2008's criteria
judge "the unlabeled examples"); N watches N ids drawn at random from the pool at the first check
with the run's seed, the same ids every round (Bloodgood & Vijay-Shanker 2009's stop set, which
need not be labeled). The draw has a generator of its own, so a run that stops picks the same ids
as the run that does not stop, up to the round it stops.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from sslzoo._contract.options import Configured, parse_assignments

OPTIONS_SEPARATOR = ":"
"""Separates a criterion's name from its options in ``NAME:KEY=VALUE,...``."""


@dataclass
class StoppingOptions:
    """Options every stopping criterion has."""

    stop_set: int = field(default=0, metadata={
        "min": 0, "help": "the ids watched: 0, the unlabeled pool after each round; N, N ids drawn at random from the "
                          "pool at the first check with the run's seed (all of it when smaller), the same every round"})


@dataclass(frozen=True)
class Predictions:
    """What a criterion sees after a round: the global ``ids`` it watches and the class probabilities
    ``probs`` (len(ids), num_classes) the model of round ``round`` gives them."""

    round: int
    ids: torch.Tensor
    probs: torch.Tensor

    @property
    def labels(self) -> torch.Tensor:
        """The predicted class of each id (the most probable; the lowest class on a tie)."""
        return self.probs.argmax(dim=1)


class StoppingCriterion(Configured, ABC):
    """Base of the stopping criteria: :meth:`check` sees a round's :class:`Predictions` and returns why
    it fires (one line), or None. A criterion is built afresh for each run and may keep state between
    rounds (the previous round's predictions, a window of agreements).

    Subclasses set ``name``, ``paper`` and ``summary``, their ``Options`` dataclass (a
    :class:`StoppingOptions` subclass, built strictly from the ``KEY=VALUE`` options: a bad one is an
    :class:`~sslzoo.errors.OptionError`), and :meth:`check`.
    """

    kind: ClassVar[str] = "stopping criterion"
    Options: ClassVar[type] = StoppingOptions

    @abstractmethod
    def check(self, seen: Predictions) -> str | None:
        """Why to stop after the round that gave ``seen`` (one line), or None to go on."""



def parse_stop(text: str) -> tuple[str, dict[str, str]]:
    """``NAME[:KEY=VALUE,...]`` → the name and the options as text. The name may be qualified
    (``DIST:NAME``): what follows the last ``:`` is options only when it holds a ``=``."""
    name, sep, rest = text.strip().rpartition(OPTIONS_SEPARATOR)
    if not sep or "=" not in rest:
        return text.strip(), {}
    return name, parse_assignments(part for part in rest.split(",") if part.strip())


def normalized_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Each row's entropy divided by log C: 0 for a sure prediction, 1 for a uniform one (C = 1: 0)."""
    classes = probs.shape[1]
    p = probs.double()
    entropy = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(dim=1)
    return entropy / math.log(classes) if classes > 1 else torch.zeros_like(entropy)
