"""TypiClust, for the low-budget regime: ``typiclust``.

With few labels, the most *typical* samples teach a model more than the most uncertain ones.
Each round the labeled ids and the pool candidates are clustered by k-means into ``|L| + B``
clusters (B = this round's queries; at most ``max_clusters``), and each query is the most typical
candidate of the largest cluster that holds the fewest labeled ids (clusters of at most
``min_cluster_size`` members are left out, as in the authors' code); typicality is ``1 / (mean
squared distance to the `neighbours` nearest candidates of its cluster + 1e-5)``, over half the
cluster when it is small, computed among that cluster's candidates only and again after each pick
from it, as the authors' code does. See :mod:`sslzoo._strategies.diversity`.

Cost, as in the authors' code: k-means is Lloyd's (scikit-learn's ``KMeans``) up to 50 clusters and
mini-batch k-means (``MiniBatchKMeans(batch_size=5000)``) above, linear in the pool (``kmeans``
chooses). A cluster's typicality is exact up to 20,000 candidates (the authors' faiss ``IndexFlatL2``)
and approximate above (``knn_search``; :mod:`sslzoo._ops.neighbours`), so a round stays linear in
the pool where the exact kNN of a cluster of a 10^7 pool would be quadratic.

The paper clusters a self-supervised embedding (SimCLR): ``--pretrain simclr`` with
``pretrain_use=probe`` and ``features=model`` clusters in one (:mod:`sslzoo._engine.pretraining`). The
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
from sslzoo._ops.neighbours import EXACT_UP_TO
from sslzoo._strategies.active import ActiveOptions, BatchStrategy
from sslzoo._strategies.diversity import kmeans, minibatch_kmeans, typicality

FULL_KMEANS_UP_TO = 50
"""``kmeans=auto`` runs Lloyd's k-means up to this many clusters and mini-batch k-means above, as the
authors' code chooses between scikit-learn's ``KMeans`` and ``MiniBatchKMeans(batch_size=5000)``."""

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
    kmeans: Literal["auto", "lloyd", "minibatch"] = field(default="auto", metadata={
        "help": "Lloyd's k-means (scikit-learn's KMeans), mini-batch k-means (MiniBatchKMeans, batches of 5000; "
                f"linear in the pool), or auto: Lloyd's up to {FULL_KMEANS_UP_TO} clusters, as the authors' code"})
    knn_search: Literal["auto", "exact", "approximate"] = field(default="auto", metadata={
        "help": "how a cluster's nearest neighbours are found for typicality: exactly, approximately "
                f"(random-projection trees and neighbour descent), or auto: exactly up to {EXACT_UP_TO} candidates"})


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

    def cluster(self, features: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """Each row's k-means cluster among ``k``, by the k-means that ``kmeans`` names."""
        how = self.options.kmeans
        if how == "minibatch" or (how == "auto" and k > FULL_KMEANS_UP_TO):
            return minibatch_kmeans(features, k, generator)
        return kmeans(features, k, generator)

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        labeled = ctx.labeled_ids()
        n_labeled = labeled.numel()
        o = self.options
        features = self.features(ctx, torch.cat([labeled, ids]))
        clusters = self.cluster(features, min(n_labeled + k, o.max_clusters), ctx.generator)
        count = int(clusters.max()) + 1
        sizes = torch.bincount(clusters, minlength=count)
        covered = torch.bincount(clusters[:n_labeled], minlength=count)
        by_size = torch.sort(sizes, descending=True, stable=True).indices  # fewest labeled first, then largest
        order = by_size[torch.sort(covered[by_size], stable=True).indices]
        large = order[sizes[order] > o.min_cluster_size]
        free = torch.ones(features.shape[0], dtype=torch.bool, device=features.device)
        free[:n_labeled] = False
        rows = torch.argsort(clusters, stable=True)  # each cluster's rows, in order, once
        ends = torch.cumsum(sizes, 0).tolist()
        left = sizes - covered  # candidates not yet chosen, per cluster
        chosen: list[Tensor] = []
        turn = 0
        while len(chosen) < k:
            queue = large if bool((left[large] > 0).any()) else order
            cluster = int(queue[turn % queue.numel()])
            turn += 1
            if int(left[cluster]) == 0:
                continue
            members = rows[ends[cluster] - int(sizes[cluster]):ends[cluster]]
            members = members[free[members]]
            typical = typicality(features[members], min(o.neighbours, members.numel() // 2), o.knn_search,
                                 ctx.generator)
            pick = members[typical.argmax()]
            free[pick] = False
            left[cluster] -= 1
            chosen.append(pick)
        return ids[torch.stack(chosen) - n_labeled]


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(TypiClust)
