"""Cluster-Margin, for large batches: ``cluster_margin``.

Uncertain examples tend to come in clumps of near-copies; Cluster-Margin keeps the margin's
uncertainty and spreads a batch over clusters computed once. Algorithm 1 of the paper: at the first
query round the pool is clustered by hierarchical agglomerative clustering with average linkage
(HAC, :mod:`sslzoo._ops.hac`) in the model's embedding; each round the ``k_m = margin_factor · k``
candidates with the smallest margins (``p(top1) - p(top2)`` of one deterministic pass) are grouped by
their clusters, the groups are sorted by size, smallest first, and the ``k`` queries are drawn
round-robin: one random member of each group in turn, until ``k`` are drawn. Small groups (the rare
kinds of uncertain example) are thus always represented.

Where sslzoo differs from the paper: it cuts the tree at ``clusters`` clusters rather than at a
distance ε (a count does not depend on the embedding's scale); and HAC runs on a seeded random
sample of at most ``hac_sample`` pool ids (its dense distance matrix is quadratic in them; the
paper ran a distributed HAC at its scale), every other id joining the cluster of its nearest
sampled id, so the one-off clustering costs an embedding of the pool and ``pool × hac_sample``
distances, linear in the pool, and each round costs one pass of the candidates, linear too. With a
pool of at most ``hac_sample`` ids the clustering is the paper's. Members of a group, and groups of
equal size, are visited in the order of one seeded random permutation of the ``k_m`` candidates.
The paper leaves ``k_m ≥ k`` and ε as parameters; ``margin_factor`` = 10 and ``clusters`` = 50 are
sslzoo's defaults.

Reference: Citovsky, G., DeSalvo, G., Gentile, C., Karydas, L., Rajagopalan, A., Rostamizadeh, A. &
Kumar, S. (2021). Batch Active Learning at Scale. Advances in Neural Information Processing Systems
34 (NeurIPS 2021), Algorithm 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor

from sslzoo import scores
from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._ops.hac import average_linkage
from sslzoo._ops.picking import top_k
from sslzoo._strategies.active import ActiveOptions, BatchStrategy
from sslzoo._strategies.diversity import ELEMENTS

CITOVSKY_2021 = ("Citovsky, G., DeSalvo, G., Gentile, C., Karydas, L., Rajagopalan, A., Rostamizadeh, A. & Kumar, "
                 "S. (2021). Batch Active Learning at Scale. Advances in Neural Information Processing Systems 34 "
                 "(NeurIPS 2021), Algorithm 1")


def round_robin(clusters: Tensor, order: Tensor, k: int) -> Tensor:
    """Positions of ``k`` of the ``clusters`` (one cluster index per candidate) drawn round-robin over
    the clusters, smallest first: round r takes the r-th member (in ``order``, a permutation of the
    positions) of every cluster that has one, clusters of equal size in the order of their first member."""
    n = clusters.numel()
    k = max(0, min(int(k), n))
    visit = clusters[order]
    by_cluster = torch.sort(visit, stable=True).indices  # members of each cluster together, in `order`
    grouped = visit[by_cluster]
    starts = torch.ones_like(grouped, dtype=torch.bool)
    starts[1:] = grouped[1:] != grouped[:-1]
    first = torch.nonzero(starts).squeeze(1)
    rank = torch.arange(n, device=clusters.device) - first[torch.cumsum(starts.long(), 0) - 1]
    member_rank = torch.empty_like(rank)
    member_rank[by_cluster] = rank  # r: how many of its cluster come before it in `order`
    ids, size = torch.unique(visit, return_counts=True)
    first_seen = torch.full_like(ids, n).scatter_reduce(0, torch.searchsorted(ids, visit),
                                                        torch.arange(n, device=clusters.device), "amin")
    by_size = torch.argsort(size * (n + 1) + first_seen)  # smallest first, ties by first member
    slot = torch.empty_like(by_size)
    slot[by_size] = torch.arange(by_size.numel(), device=clusters.device)
    cluster_slot = slot[torch.searchsorted(ids, visit)]
    turn = torch.argsort(member_rank * (by_size.numel() + 1) + cluster_slot)
    return order[turn[:k]]


@dataclass
class ClusterMarginOptions(ActiveOptions):
    """Cluster-Margin's options: k_m = 10 k, 50 clusters, HAC on at most 2,000 pool ids."""

    features: Literal["model", "inputs"] = field(default="model", metadata={
        "help": "what HAC clusters: the model's embedding at the first query round (the input of its last linear "
                "layer, as the paper), or the raw inputs (flattened)"})
    margin_factor: float = field(default=10.0, metadata={
        "min": 1.0, "help": "k_m = margin_factor × the round's queries: how many smallest-margin candidates are "
                            "spread over the clusters"})
    clusters: int = field(default=50, metadata={"min": 1, "help": "HAC's tree is cut at this many clusters"})
    hac_sample: int = field(default=2000, metadata={
        "min": 2, "max": 20_000, "help": "HAC runs on a seeded sample of at most this many pool ids (dense "
                                         "distances: quadratic in it); the others join their nearest one's cluster"})


class ClusterMargin(BatchStrategy):
    """Query the smallest-margin candidates, drawn round-robin over HAC clusters computed once, smallest first."""

    name = "cluster_margin"
    paper = CITOVSKY_2021
    summary = "Cluster-Margin: smallest-margin candidates drawn round-robin over HAC clusters, smallest first"
    Options: ClassVar[type] = ClusterMarginOptions
    options: ClusterMarginOptions
    cluster_of: Tensor | None = None

    def check(self, ctx: Context) -> None:
        """Before round 0 of a run: forget the clusters of any run before."""
        super().check(ctx)
        self.cluster_of = None

    def features(self, ctx: Context, ids: Tensor) -> Tensor:
        """The rows that are clustered: ``ids``' embedding, or their raw inputs (flattened)."""
        return ctx.embed(ids) if self.options.features == "model" else ctx.x[ids].flatten(1).float()

    def cluster(self, ctx: Context) -> Tensor:
        """Every training id's cluster (computed at the first call, then kept): HAC on a sample of the
        pool, each id in the cluster of its nearest sampled id."""
        if self.cluster_of is None:
            pool = ctx.pool_ids()
            perm = torch.randperm(pool.numel(), generator=ctx.generator, device=pool.device)
            sample = pool[perm[:self.options.hac_sample]].sort().values
            x = self.features(ctx, sample)
            sampled = average_linkage(x, self.options.clusters)
            every = torch.arange(ctx.x.shape[0], device=pool.device)
            step = max(1, ELEMENTS // max(1, sample.numel()))
            nearest = [torch.cdist(self.features(ctx, every[start:start + step]), x).argmin(1)
                       for start in range(0, every.numel(), step)]
            self.cluster_of = sampled[torch.cat(nearest)]
        return self.cluster_of

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        cluster_of = self.cluster(ctx)
        m = min(ids.numel(), max(k, int(self.options.margin_factor * k)))
        uncertain = top_k(scores.margin_score(ctx.predict(ids)), ids, m, ctx.generator)
        order = torch.randperm(m, generator=ctx.generator, device=uncertain.device)
        return uncertain[round_robin(cluster_of[uncertain.to(cluster_of.device)].to(uncertain.device), order, k)]


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(ClusterMargin)
