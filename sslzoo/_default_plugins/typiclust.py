"""TypiClust, for the low-budget regime: ``typiclust``.

With few labels, the most *typical* samples teach a model more than the most uncertain ones.
Each round the labeled ids and the pool candidates are clustered by k-means into ``|L| + B``
clusters (B = this round's queries; at most ``max_clusters``), and each query is the most typical
candidate of the largest cluster that holds the fewest labeled ids (clusters of at most
``min_cluster_size`` members are left out, as in the authors' code); typicality is ``1 / (mean
squared distance to the `neighbours` nearest candidates of its cluster + 1e-5)``, over half the
cluster when it is small. See :mod:`sslzoo._strategies.diversity`.

The paper clusters a self-supervised embedding (SimCLR), which sslzoo does not train. The
``features`` option offers the raw inputs (default) or the model's embedding
(:meth:`sslzoo._contract.context.Context.embed`). The inputs are the default because they keep what makes
the method work at a low budget: a representation that does not depend on the few labels held
(the model's own embedding after training on 10 labels is what k-center's cold start suffers
from) and that stays the same from round to round.

Reference: Hacohen, G., Dekel, A. & Weinshall, D. (2022). Active Learning on a Budget: Opposite
Strategies Suit High and Low Budgets. Proceedings of the 39th International Conference on Machine
Learning (ICML 2022), PMLR 162:8175–8195.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._strategies.active import ActiveOptions, BatchStrategy
from sslzoo._strategies.diversity import kmeans, typicality

HACOHEN_2022 = ("Hacohen, G., Dekel, A. & Weinshall, D. (2022). Active Learning on a Budget: Opposite Strategies "
                "Suit High and Low Budgets. Proceedings of the 39th International Conference on Machine Learning "
                "(ICML 2022), PMLR 162:8175–8195")


@dataclass
class TypiClustOptions(ActiveOptions):
    """TypiClust's options, the authors' code's constants as defaults."""

    features: Literal["inputs", "model"] = field(default="inputs", metadata={
        "help": "what is clustered: the raw inputs (flattened), or the model's embedding (the input of its last "
                "linear layer); the paper used a self-supervised embedding"})
    max_clusters: int = field(default=500, metadata={"min": 1, "help": "at most this many k-means clusters"})
    min_cluster_size: int = field(default=5, metadata={
        "min": 0, "help": "clusters of at most this many members (labeled ones included) are not queried"})
    neighbours: int = field(default=20, metadata={
        "min": 1, "help": "nearest neighbours in a typicality (at most half the cluster's candidates)"})


class TypiClust(BatchStrategy):
    """Query the most typical candidate of each of the largest clusters not yet covered by labels."""

    name = "typiclust"
    paper = HACOHEN_2022
    summary = "TypiClust (low budget): the most typical candidate of each largest uncovered k-means cluster"
    Options: ClassVar[type] = TypiClustOptions
    options: TypiClustOptions

    def features(self, ctx: Context, ids: Tensor) -> Tensor:
        """The rows that are clustered: ``ids``' raw inputs, flattened, or their embedding."""
        if self.options.features == "model":
            return ctx.embed(ids)
        return ctx.x[ids].flatten(1).float()

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        labeled = ctx.labeled_ids()
        n_labeled = labeled.numel()
        features = self.features(ctx, torch.cat([labeled, ids]))
        clusters = kmeans(features, min(n_labeled + k, self.options.max_clusters), ctx.generator)
        count = int(clusters.max()) + 1
        sizes = torch.bincount(clusters, minlength=count)
        covered = torch.bincount(clusters[:n_labeled], minlength=count)
        by_size = torch.sort(sizes, descending=True, stable=True).indices  # fewest labeled first, then largest
        order = by_size[torch.sort(covered[by_size], stable=True).indices]
        large = order[sizes[order] > self.options.min_cluster_size]
        free = torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
        free[:n_labeled] = False
        chosen: list[Tensor] = []
        turn = 0
        while len(chosen) < k:
            queue = large if bool(free[torch.isin(clusters, large)].any()) else order
            cluster = queue[turn % queue.numel()]
            turn += 1
            members = torch.nonzero(free & (clusters == cluster)).squeeze(1)
            if members.numel() == 0:
                continue
            typical = typicality(features[members], min(self.options.neighbours, members.numel() // 2))
            pick = members[typical.argmax()]
            free[pick] = False
            chosen.append(pick)
        return ids[torch.stack(chosen) - n_labeled]


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(TypiClust)
