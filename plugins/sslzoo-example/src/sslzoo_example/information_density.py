"""Information density: uncertainty weighted by how representative a pool sample is.

The most uncertain samples are often outliers: a model is unsure of them because nothing like
them exists, and labelling them teaches little about the rest of the pool. Settles & Craven
(2008) weigh each sample's uncertainty by its average similarity to the pool,
``score(x) = entropy(x) * (mean_u sim(x, u)) ** beta``, so that a query is both uncertain and
typical. ``beta`` sets the balance: 0 gives back plain entropy sampling, larger values favour
dense regions more.

The similarity is the cosine of the model's embeddings (``ctx.embed``: the input of its last
linear layer, non-negative after a ReLU). The mean cosine over the pool needs no pool × pool
matrix: ``mean_u cos(x, u) = x̂ · mean_u û`` with ``x̂`` the unit-length embedding, so scoring costs
one pass over the candidates, whatever their number.

Reference: Settles, B. & Craven, M. (2008). An Analysis of Active Learning Strategies for
Sequence Labeling Tasks. Proceedings of the 2008 Conference on Empirical Methods in Natural
Language Processing (EMNLP 2008), 1070–1079.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from sslzoo import ActiveOptions, ActiveStrategy, Context, scores

SETTLES_2008 = ("Settles, B. & Craven, M. (2008). An Analysis of Active Learning Strategies for Sequence "
                "Labeling Tasks. Proceedings of the 2008 Conference on Empirical Methods in Natural "
                "Language Processing (EMNLP 2008), 1070–1079")


def information_density(uncertainty: Tensor, features: Tensor, beta: float = 1.0) -> Tensor:
    """``uncertainty * (mean cosine similarity to every row of features) ** beta``, one per row.

    ``uncertainty`` is 1-D (N,), ``features`` (N, D), aligned. A similarity below 0 counts as 0
    and a zero row is similar to nothing. Returns (N,) on the inputs' device.
    """
    if uncertainty.dim() != 1 or features.dim() != 2 or uncertainty.numel() != features.shape[0]:
        raise ValueError(f"information_density needs uncertainties (N,) and features (N, D), got shapes "
                         f"{tuple(uncertainty.shape)} and {tuple(features.shape)}")
    unit = torch.nn.functional.normalize(features.float(), dim=1)
    similarity = (unit @ unit.mean(dim=0)).clamp_min(0.0)
    return uncertainty * similarity**beta


@dataclass
class InformationDensityOptions(ActiveOptions):
    """Active-learning options (query_size, budget, ...) plus the density exponent."""

    beta: float = field(default=1.0, metadata={
        "min": 0.0, "help": "weight of the density: entropy × similarity^beta (0: plain entropy)"})


class InformationDensity(ActiveStrategy):
    """Query the samples whose predictive entropy × mean similarity to the pool is highest."""

    name = "information_density"
    paper = SETTLES_2008
    summary = "information density: entropy weighted by mean cosine similarity to the pool (^beta)"
    Options: ClassVar[type] = InformationDensityOptions
    options: InformationDensityOptions

    def score(self, ctx: Context, ids: Tensor) -> Tensor:
        """Entropy of one deterministic pass × the mean cosine of the ids' embeddings, ^beta."""
        return information_density(scores.entropy(ctx.predict(ids)), ctx.embed(ids), self.options.beta)
