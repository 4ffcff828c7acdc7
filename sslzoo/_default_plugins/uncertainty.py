"""Uncertainty-sampling active learning: ``random``, ``least_confidence``, ``margin``, ``entropy``.

Each round the model scores the unlabeled pool with one deterministic forward pass (dropout
off) and queries the ``query_size`` most uncertain ids for the oracle, until ``budget`` oracle
labels are held. ``random`` queries uniformly at random: the passive baseline an active
learner must beat.

Reference: Settles, B. (2009). Active Learning Literature Survey. Computer Sciences Technical
Report 1648, University of Wisconsin–Madison, §3.1 (uncertainty sampling).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sslzoo import scores
from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._strategies.active import ActiveStrategy, UncertaintyStrategy

SETTLES_2009 = ("Settles, B. (2009). Active Learning Literature Survey. Computer Sciences Technical "
                "Report 1648, University of Wisconsin–Madison")


class RandomSampling(ActiveStrategy):
    """Query pool ids uniformly at random (seeded by the run's generator)."""

    name = "random"
    paper = f"passive-learning baseline of active learning; see {SETTLES_2009}"
    summary = "active-learning baseline: query query_size random pool ids per round"

    def score(self, ctx: Context, ids: Tensor) -> Tensor:
        return torch.rand(ids.numel(), generator=ctx.generator, device=ids.device)


class LeastConfidence(UncertaintyStrategy):
    """Query the ids whose most probable class has the lowest probability (score ``1 - max p``)."""

    name = "least_confidence"
    paper = (f"{SETTLES_2009}, §3.1; Culotta, A. & McCallum, A. (2005). Reducing Labeling Effort for "
             f"Structured Prediction Tasks. AAAI 2005, 746–751")
    summary = "uncertainty sampling: query the lowest max-probability pool ids"
    uncertainty = staticmethod(scores.least_confidence)


class Margin(UncertaintyStrategy):
    """Query the ids with the smallest margin between the top two classes (score ``1 - margin``)."""

    name = "margin"
    paper = (f"{SETTLES_2009}, §3.1; Scheffer, T., Decomain, C. & Wrobel, S. (2001). Active Hidden "
             f"Markov Models for Information Extraction. IDA 2001, LNCS 2189, 309–318")
    summary = "uncertainty sampling: query the smallest top-1 minus top-2 probability margin"
    uncertainty = staticmethod(scores.margin_score)


class Entropy(UncertaintyStrategy):
    """Query the ids with the highest predictive entropy ``-Σ p log p``."""

    name = "entropy"
    paper = (f"{SETTLES_2009}, §3.1; Shannon, C. E. (1948). A Mathematical Theory of Communication. "
             f"Bell System Technical Journal 27(3), 379–423")
    summary = "uncertainty sampling: query the highest predictive-entropy pool ids"
    uncertainty = staticmethod(scores.entropy)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    for cls in (RandomSampling, LeastConfidence, Margin, Entropy):
        register(cls)
