"""Hierarchical agglomerative clustering with average linkage (UPGMA), by the nearest-neighbour chain.

Average linkage merges, again and again, the two clusters whose mean pairwise (Euclidean) distance is
the smallest; after a merge, the distance of a cluster k to the union of i and j is ``(n_i d(k, i) +
n_j d(k, j)) / (n_i + n_j)`` (Lance & Williams 1967). Average linkage is *reducible*, so the
nearest-neighbour chain (Murtagh 1983; the algorithm of ``scipy.cluster.hierarchy.linkage(...,
method="average")``) finds the same merges in ``O(n²)`` time, following nearest neighbours until two
clusters are each other's nearest, and merging them. Memory is the dense n × n distance matrix, so
the rows are a sample of at most a few thousand; the clusters are cut at a count (:func:`average_linkage`).

References: Lance, G. N. & Williams, W. T. (1967). A General Theory of Classificatory Sorting
Strategies: 1. Hierarchical Systems. The Computer Journal 9(4), 373–380. Murtagh, F. (1983). A Survey
of Recent Advances in Hierarchical Clustering Algorithms. The Computer Journal 26(4), 354–359.
"""

from __future__ import annotations

import torch
from torch import Tensor


def average_linkage(x: Tensor, clusters: int) -> Tensor:
    """Cluster index (n,) of each row of ``x``, cutting the average-linkage tree at ``clusters``
    clusters (the ``n - clusters`` lowest merges; as ``fcluster(..., clusters, "maxclust")`` cuts
    scipy's tree when no two merges tie). Indices run 0, 1, … in the order of each cluster's first row."""
    n = x.shape[0]
    clusters = max(1, min(int(clusters), n))
    d = torch.cdist(x.double(), x.double())
    d.fill_diagonal_(torch.inf)
    size = torch.ones(n, dtype=torch.float64, device=x.device)
    alive = list(range(n))
    merges: list[tuple[float, int, int]] = []
    chain: list[int] = []
    for _ in range(n - 1):
        while True:
            if not chain:
                chain.append(alive[0])
            a = chain[-1]
            row = d[a]
            b = int(row.argmin())
            if len(chain) > 1 and float(row[chain[-2]]) <= float(row[b]):
                b = chain[-2]
            if len(chain) > 1 and b == chain[-2]:
                break
            chain.append(b)
        chain.pop()
        chain.pop()
        merges.append((float(d[a, b]), a, b))
        joined = (size[a] * d[a] + size[b] * d[b]) / (size[a] + size[b])
        d[a], d[:, a] = joined, joined
        d[b], d[:, b] = torch.inf, torch.inf
        d[a, a] = torch.inf
        size[a] += size[b]
        alive.remove(b)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, a, b in sorted(merges, key=lambda m: m[0])[:n - clusters]:
        parent[root(b)] = root(a)
    roots = torch.tensor([root(i) for i in range(n)], dtype=torch.long)
    _, first = torch.unique(roots, return_inverse=True)
    order = torch.full((n,), n, dtype=torch.long).scatter_reduce(0, first, torch.arange(n), "amin")
    rank = torch.empty_like(order)
    rank[torch.argsort(order)] = torch.arange(order.numel())
    return rank[first][:n].to(x.device)
