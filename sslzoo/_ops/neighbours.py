"""Approximate k nearest neighbours of every row, in time and memory about linear in the rows.

The exact search (:func:`sslzoo._ops.graph.knn`) compares every row with every other: quadratic in the
rows, 10^12 distances for a pool of 10^6. :func:`approximate_knn` finds nearly the same neighbours with
a forest of random-projection trees refined by neighbour descent, as PyNNDescent builds its index
(McInnes, pynndescent; Dong, Moses & Li 2011):

1. **Random-projection trees** (Dasgupta & Freund 2008): each tree splits the rows in two at the
   median of their projections on a random direction (one direction per node), level by level, until a
   leaf holds at most ``leaf_size`` rows; each row's neighbours among the rows of its leaf are exact (a
   batch of ``leaf_size``² distances per leaf). ``trees`` trees, each from its own directions, give each
   row ``trees · k`` candidates; the ``k`` nearest of them are kept.
2. **Neighbour descent** (Dong et al. 2011): a neighbour of a neighbour is likely a neighbour; each of
   ``refine`` rounds ranks every row's current neighbours together with theirs (``k + k²``
   candidates, their exact distances) and keeps the ``k`` nearest.

The cost is ``trees · n · leaf_size + refine · n · k²`` distances and ``trees · log2(n / leaf_size)``
sorts of the n rows; memory is the n × k result and a chunk. The distances returned are exact (squared
Euclidean) for the neighbours found; what can be missed is a true neighbour that no tree put in a row's
leaf and no neighbour of it knew. The recall against the exact search is measured in
``benchmarks/test_speed_scaling.py`` (see docs/performance.md).

:func:`nearest` chooses: the exact search up to ``EXACT_UP_TO`` rows (``"auto"``), the approximate one
above; ``"exact"`` and ``"approximate"`` force either.

References:

* Dasgupta, S. & Freund, Y. (2008). Random projection trees and low dimensional manifolds. STOC 2008,
  537–546.
* Dong, W., Moses, C. & Li, K. (2011). Efficient k-nearest neighbor graph construction for generic
  similarity measures. WWW 2011, 577–586 (NN-descent).
* McInnes, L. PyNNDescent (https://github.com/lmcinnes/pynndescent): an RP-forest initialisation refined
  by NN-descent, the scheme followed here (sslzoo's trees split at the median, so every leaf has the same
  size, and its descent rounds rank all neighbours of neighbours at once instead of sampling them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

__all__ = ["EXACT_UP_TO", "Method", "approximate_knn", "nearest"]

Method = Literal["auto", "exact", "approximate"]

EXACT_UP_TO = 20_000
"""``"auto"`` searches exactly up to this many rows (4·10^8 distances), approximately above."""
ELEMENTS = 2**22
"""Values (distances or gathered inputs) held at once."""


def nearest(x: Tensor, k: int, method: Method, exact: Callable[[Tensor, int], tuple[Tensor, Tensor]],
            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest other rows of each row of ``x``: ``(squared distances, indices)``, (n, k), nearest
    first, by ``exact(x, k)`` or by :func:`approximate_knn`, as ``method`` says (``"auto"``: exact up to
    ``EXACT_UP_TO`` rows)."""
    if method not in ("auto", "exact", "approximate"):
        raise ValueError(f"unknown neighbour search {method!r}; allowed: auto, exact, approximate")
    if method == "exact" or (method == "auto" and x.shape[0] <= EXACT_UP_TO):
        return exact(x, k)
    return approximate_knn(x, k, generator=generator)


def approximate_knn(x: Tensor, k: int, trees: int = 8, leaf_size: int = 512, refine: int = 1,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The (approximately) ``k`` nearest other rows of each row of ``x`` (flattened, float32):
    ``(squared distances, indices)``, both (n, k), nearest first; a forest of ``trees`` random-projection
    trees with leaves of at most ``leaf_size`` rows, then ``refine`` rounds of neighbour descent (see the
    module). The directions are drawn from ``generator``. ``k`` is cut to the rows there are."""
    x = x.flatten(1).float()
    n = x.shape[0]
    k = max(0, min(int(k), n - 1))
    if k == 0:
        return (torch.empty(n, 0, dtype=torch.float32, device=x.device),
                torch.empty(n, 0, dtype=torch.long, device=x.device))
    leaf_size = max(int(leaf_size), k + 1)
    candidates = torch.cat([_leaf_neighbours(x, *_tree_order(x, leaf_size, generator), k)
                            for _ in range(max(1, int(trees)))], dim=1)
    dist, index = _best(x, candidates, k)
    for _ in range(max(0, int(refine))):
        dist, index = _descend(x, index, k)
    return dist, index


def _tree_order(x: Tensor, leaf_size: int, generator: torch.Generator | None) -> tuple[Tensor, int]:
    """The rows in the order of the leaves of one random-projection tree: after level t the rows of node
    j are the positions ``[floor(j n / 2^t), floor((j + 1) n / 2^t))``, sorted by their projection on
    the node's direction, so each node's lower half is its first child; and the number of leaves, the
    nodes of the last level (at most ``leaf_size`` rows each)."""
    n, d = x.shape
    order = torch.arange(n, device=x.device)
    depth = 0
    while n > leaf_size * 2**depth:
        depth += 1
    positions = torch.arange(n, device=x.device)
    for level in range(depth):
        nodes = 2**level
        node = ((positions + 1) * nodes - 1) // n  # the largest j with floor(j n / 2^t) <= p
        directions = torch.randn(nodes, d, generator=generator, device=x.device if generator is None
                                 else generator.device).to(x.device)
        projection = torch.empty(n, dtype=torch.float64, device=x.device)
        step = max(1, ELEMENTS // max(1, d))
        for start in range(0, n, step):
            rows = order[start:start + step]
            projection[start:start + step] = (x[rows] * directions[node[start:start + step]]).sum(1).double()
        low, high = projection.min(), projection.max()
        fraction = (projection - low) / (high - low).clamp_min(1e-300) * 0.5  # in [0, 0.5]: within the node
        order = order[torch.argsort(node.double() + fraction, stable=True)]
    return order, 2**depth


def _leaf_neighbours(x: Tensor, order: Tensor, leaves: int, k: int) -> Tensor:
    """Each row's ``k`` nearest among the rows of its leaf (n, k): leaf j holds the rows at the positions
    ``[floor(j n / leaves), floor((j + 1) n / leaves))`` of ``order``; a row with fewer than ``k`` others
    in its leaf repeats its nearest (duplicates are dropped when candidates are ranked)."""
    n, d = x.shape
    bounds = (torch.arange(leaves + 1, device=x.device) * n) // leaves
    width = int((bounds[1:] - bounds[:-1]).max())
    positions = bounds[:-1].unsqueeze(1) + torch.arange(width, device=x.device)
    valid = positions < bounds[1:].unsqueeze(1)
    members = order[positions.clamp_max(n - 1)]
    out = torch.empty(n, k, dtype=torch.long, device=x.device)
    step = max(1, ELEMENTS // (width * max(width, d)))
    eye = torch.eye(width, dtype=torch.bool, device=x.device)
    for start in range(0, leaves, step):
        m = members[start:start + step]
        ok = valid[start:start + step]
        points = x[m]  # (b, w, d)
        sq = points.square().sum(2)
        dist = torch.baddbmm(sq.unsqueeze(2) + sq.unsqueeze(1), points, points.transpose(1, 2), alpha=-2.0)
        dist.masked_fill_(~ok.unsqueeze(1) | eye, torch.inf)
        near = dist.topk(min(k, width), dim=2, largest=False).indices  # (b, w, k')
        if near.shape[2] < k:
            near = torch.cat([near, near[:, :, :1].expand(-1, -1, k - near.shape[2])], dim=2)
        found = m.gather(1, near.flatten(1)).view_as(near)
        out[m[ok]] = found[ok]
    return out


def _best(x: Tensor, candidates: Tensor, k: int, start: int = 0) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest of the ``candidates`` (b, c) of the rows ``start, start + 1, ...``, duplicates
    and the row itself left out: ``(squared distances, indices)``, (b, k), nearest first."""
    b, c = candidates.shape
    dist = torch.empty(b, k, dtype=torch.float32, device=x.device)
    index = torch.empty(b, k, dtype=torch.long, device=x.device)
    step = max(1, ELEMENTS // (c * x.shape[1]))
    sq = x.square().sum(1)
    for s in range(0, b, step):
        cand = candidates[s:s + step].sort(1).values
        rows = torch.arange(start + s, start + s + cand.shape[0], device=x.device)
        points = x.index_select(0, cand.flatten()).view(cand.shape[0], c, -1)
        d = torch.baddbmm((sq[cand] + sq[rows].unsqueeze(1)).unsqueeze(2), points, x[rows].unsqueeze(2),
                          alpha=-2.0).squeeze(2).clamp_min(0.0)
        repeated = torch.zeros_like(cand, dtype=torch.bool)
        repeated[:, 1:] = cand[:, 1:] == cand[:, :-1]
        d.masked_fill_(repeated | (cand == rows.unsqueeze(1)), torch.inf)
        values, pick = d.topk(k, dim=1, largest=False, sorted=True)
        dist[s:s + step] = values
        index[s:s + step] = cand.gather(1, pick)
    return dist, index


def _descend(x: Tensor, index: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """One round of neighbour descent: the ``k`` nearest among each row's neighbours and theirs."""
    n = index.shape[0]
    dist = torch.empty(n, k, dtype=torch.float32, device=x.device)
    out = torch.empty(n, k, dtype=torch.long, device=x.device)
    step = max(1, ELEMENTS // (k * k))
    for start in range(0, n, step):
        own = index[start:start + step]
        dist[start:start + step], out[start:start + step] = _best(
            x, torch.cat([own, index[own].flatten(1)], dim=1), k, start)
    return dist, out
