"""Probability coverage (ProbCover, Yehuda et al. 2022): the δ-ball graph of a set of points, the δ
chosen by the purity of a clustering, and the greedy maximum coverage over the graph.

The graph joins every pair of points at distance ≤ δ (each point to itself too). It is built in
chunks of rows (at most ``ELEMENTS`` distances at once) and kept as an edge list sorted by its first
end, so memory is the edges and one chunk; time is all pairs, ``n²·D`` for n points of dimension
D. The greedy cover updates the out-degrees of the points left as points become covered, touching
each edge at most twice over a whole selection (scikit-activeml's ``ProbCover`` recounts the dense
n × n graph per query; the picks are the same).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sslzoo._ops.picking import top_k

ELEMENTS = 2**22
"""Distances held at once (16 MB in float32)."""


def _distances(x: Tensor, y: Tensor) -> Tensor:
    """Euclidean distances (len(x), len(y))."""
    return torch.cdist(x, y)


def radius_graph(x: Tensor, delta: float) -> tuple[Tensor, Tensor]:
    """Edges ``(rows, cols)`` (int64, sorted by row) of every pair of rows of ``x`` at distance ≤ ``delta``,
    each row with itself included; the graph is symmetric."""
    n = x.shape[0]
    step = max(1, ELEMENTS // max(1, n))
    rows, cols = [], []
    for start in range(0, n, step):
        near = torch.nonzero(_distances(x[start:start + step], x) <= delta)
        rows.append(near[:, 0] + start)
        cols.append(near[:, 1])
    return torch.cat(rows), torch.cat(cols)


def nearest_other_cluster(x: Tensor, clusters: Tensor) -> Tensor:
    """For each row of ``x``, the distance to the nearest row of another cluster (+inf if none)."""
    n = x.shape[0]
    step = max(1, ELEMENTS // max(1, n))
    out = torch.empty(n, dtype=x.dtype, device=x.device)
    for start in range(0, n, step):
        d = _distances(x[start:start + step], x)
        same = clusters[start:start + step, None] == clusters[None, :]
        out[start:start + step] = d.masked_fill(same, torch.inf).amin(1)
    return out


def delta_by_purity(x: Tensor, clusters: Tensor, deltas: Tensor, alpha: float) -> float:
    """The largest of the increasing ``deltas`` up to which the δ-balls stay pure: a ball is pure when
    every point in it shares its centre's cluster, and δ is kept while at least ``alpha`` of the
    balls are pure (Yehuda et al. 2022; the loop of scikit-activeml's ``ProbCover.query``: it
    stops at the first δ below ``alpha`` and falls back to the smallest δ)."""
    nearest = nearest_other_cluster(x, clusters)
    chosen = float(deltas[0])
    for delta in deltas.tolist():
        purity = float((nearest > delta).double().mean())  # impure: a point of another cluster within delta
        if purity < alpha:
            break
        chosen = delta
    return chosen


def max_coverage(rows: Tensor, cols: Tensor, n: int, covering: Tensor, candidates: Tensor, k: int,
                 generator: torch.Generator | None = None) -> Tensor:
    """``k`` of the ``candidates`` (positions among the n points), picked one after the other: each
    time the one whose δ-ball holds the most points not yet covered (ties at random), as ProbCover's
    greedy step (i) + (ii). Points within δ of a ``covering`` point (the labeled ones) and of a pick
    are covered. ``rows``/``cols``: a symmetric edge list sorted by row (:func:`radius_graph`)."""
    device = rows.device
    starts = torch.searchsorted(rows, torch.arange(n + 1, device=device))
    covered = torch.zeros(n, dtype=torch.bool, device=device)
    degree = torch.bincount(rows, minlength=n)

    def cover(points: Tensor) -> None:
        """Mark the neighbours of ``points`` covered and take them out of every out-degree."""
        if points.numel() == 0:
            return
        counts = starts[points + 1] - starts[points]
        spans = torch.repeat_interleave(starts[points], counts)
        offsets = torch.arange(int(counts.sum()), device=device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        reached = torch.unique(cols[spans + offsets])
        fresh = reached[~covered[reached]]
        covered[fresh] = True
        counts = starts[fresh + 1] - starts[fresh]
        spans = torch.repeat_interleave(starts[fresh], counts)
        offsets = torch.arange(int(counts.sum()), device=device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        degree.sub_(torch.bincount(cols[spans + offsets], minlength=n))

    cover(covering)
    free = candidates.clone()
    picks = []
    for _ in range(min(k, free.numel())):
        pick = top_k(degree[free], free, 1, generator)
        picks.append(pick)
        free = free[free != pick]
        cover(pick)
    return torch.cat(picks) if picks else candidates[:0]
