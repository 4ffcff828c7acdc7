"""Diversity in an embedding: k-center greedy, k-means++ seeding, k-means (Lloyd's and mini-batch) and
typicality.

Pure functions of feature tensors (rows = candidates), computed on the tensors' device in chunks
of at most ``ELEMENTS`` distances, so that no N × N matrix is ever built for a large pool. Every
random choice is drawn from the ``torch.Generator`` passed in. They return *positions* in the
rows given; the strategies map them to global ids.

References:

* Sener, O. & Savarese, S. (2018). Active Learning for Convolutional Neural Networks: A Core-Set
  Approach. ICLR 2018 (Algorithm 1, k-Center-Greedy).
* Arthur, D. & Vassilvitskii, S. (2007). k-means++: The Advantages of Careful Seeding. SODA 2007,
  1027–1035; used on gradient embeddings by Ash, J. T., Zhang, C., Krishnamurthy, A., Langford, J.
  & Agarwal, A. (2020). Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds.
  ICLR 2020.
* Hacohen, G., Dekel, A. & Weinshall, D. (2022). Active Learning on a Budget: Opposite Strategies
  Suit High and Low Budgets. ICML 2022, PMLR 162:8175–8195 (typicality).
* Sculley, D. (2010). Web-Scale K-Means Clustering. WWW 2010, 1177–1178 (mini-batch k-means), as
  scikit-learn's ``MiniBatchKMeans`` runs it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sslzoo._ops.embedding import GradientEmbedding
from sslzoo._ops.neighbours import Method, nearest
from sslzoo._ops.rows import rows_dot, sq_norms

__all__ = ["kcenter_greedy", "kmeans", "kmeans_pp_seeding", "min_sq_distances", "minibatch_kmeans", "sq_distances",
           "typicality"]

ELEMENTS = 2**22
"""Distances held at once (16 MB in float32)."""
PRUNE_FROM = 2**16
"""From this many rows, k-center greedy and k-means++ seeding skip the rows that a new center cannot
move (the triangle inequality, see :func:`_kcenter_pruned`); below, every row is measured at every pick."""
SLACK = 1e-4
"""The relative margin of the triangle-inequality test, so rounding never skips a row it would move."""


def sq_distances(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances (len(x), len(y)), never negative."""
    return (x.square().sum(1, keepdim=True) + y.square().sum(1) - 2.0 * (x @ y.T)).clamp_min(0.0)


def min_sq_distances(x: Tensor, centers: Tensor) -> Tensor:
    """``min_c |x_i - c|²`` (N,) over the rows of ``centers`` (+inf without any), in blocks of rows of
    ``x`` against every center (each row's norm computed once, ``x`` read once)."""
    out = torch.full((x.shape[0],), torch.inf, dtype=x.dtype, device=x.device)
    if centers.shape[0] == 0:
        return out
    step = max(1, ELEMENTS // centers.shape[0])
    for start in range(0, x.shape[0], step):
        out[start:start + step] = torch.minimum(out[start:start + step],
                                                sq_distances(x[start:start + step], centers).amin(1))
    return out


def kcenter_greedy(x: Tensor, centers: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """Positions of ``k`` rows of ``x`` chosen by k-center greedy (Sener & Savarese 2018, Algorithm 1):
    each is the row farthest from its nearest center (``centers``, then the rows chosen so far);
    ties to the first. Without centers the first choice is a random row (from ``generator``)."""
    n = x.shape[0]
    k = max(0, min(int(k), n))
    chosen = torch.empty(k, dtype=torch.long, device=x.device)
    if k == 0:
        return chosen
    if n >= PRUNE_FROM:
        return _kcenter_pruned(x, centers, k, generator)
    nearest = min_sq_distances(x, centers)
    norms = x.square().sum(1, keepdim=True)  # once: each pick needs only its own norm and products
    for i in range(k):
        if i == 0 and centers.shape[0] == 0:
            pick = torch.randint(n, (), generator=generator, device=x.device)
        else:
            pick = nearest.argmax()
        chosen[i] = pick
        y = x[pick].unsqueeze(0)
        nearest = torch.minimum(nearest, (norms + y.square().sum(1) - 2.0 * (x @ y.T)).clamp_min(0.0).squeeze(1))
        nearest[pick] = -1.0  # never again, even among duplicates
    return chosen


def _nearest_centers(x: Tensor, centers: Tensor, norms: Tensor) -> tuple[Tensor, Tensor]:
    """(``min_c |x_i - c|²``, its center's position) (N,), in blocks of rows (``norms``: ``|x_i|²``);
    (+inf, -1) without centers."""
    out = torch.full((x.shape[0],), torch.inf, dtype=x.dtype, device=x.device)
    which = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    if centers.shape[0] == 0:
        return out, which
    step = max(1, ELEMENTS // centers.shape[0])
    for start in range(0, x.shape[0], step):
        block = (norms[start:start + step, None] + centers.square().sum(1) - 2.0 * (x[start:start + step] @ centers.T))
        out[start:start + step], which[start:start + step] = block.clamp_min(0.0).min(1)
    return out, which


def _kcenter_pruned(x: Tensor, centers: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """:func:`kcenter_greedy` for a large ``x``, measuring at each pick only the rows the new center ``y``
    can move: a row whose nearest center ``c`` has ``|y - c|² ≥ 4 |x - c|²`` is at least as far from
    ``y`` as from ``c`` (triangle inequality; Elkan 2003), so it is skipped. After the first picks most
    rows are, and a pick reads a few vectors of length N and the rows near ``y`` instead of all of ``x``
    (where most rows stay, ``x`` is read once, as without the test). The same picks as measuring every
    row, but for rounding within ``SLACK``."""
    n = x.shape[0]
    chosen = torch.empty(k, dtype=torch.long, device=x.device)
    norms = sq_norms(x)
    nearest, which = _nearest_centers(x, centers, norms)
    kept = torch.cat([centers, x.new_empty(k, x.shape[1])])
    count = centers.shape[0]
    for i in range(k):
        if i == 0 and count == 0:
            pick = torch.randint(n, (), generator=generator, device=x.device)
        else:
            pick = nearest.argmax()
        chosen[i] = pick
        y = x[pick]
        if count:
            apart = sq_distances(y.unsqueeze(0), kept[:count]).squeeze(0)  # |y - c|² for every center so far
            rows = torch.nonzero(apart[which.clamp_min(0)] < 4.0 * (1.0 + SLACK) * nearest).squeeze(1)
        else:
            rows = torch.arange(n, device=x.device)
        if 2 * rows.numel() > n:  # most rows: one pass over x beats gathering them
            d = (norms + y.square().sum() - 2.0 * (x @ y)).clamp_min(0.0)[rows]
        else:
            d = (norms[rows] + y.square().sum() - 2.0 * rows_dot(x, rows, y)).clamp_min(0.0)
        closer = d < nearest[rows]
        nearest[rows[closer]] = d[closer]
        which[rows[closer]] = count
        kept[count] = y
        count += 1
        nearest[pick] = -1.0  # never again, even among duplicates
    return chosen


def _lower_pruned(g: GradientEmbedding, chosen: Tensor, i: int, nearest: Tensor, which: Tensor, norms: Tensor) -> None:
    """Lower ``nearest`` (and ``which``, the seed each embedding is nearest to) for the new seed
    ``chosen[i]``, measuring only the embeddings it can move (the test of :func:`_kcenter_pruned`)."""
    n, j = len(g), chosen[i]
    apart = (norms[chosen[:i]] + norms[j] - 2.0 * (g.a[chosen[:i]] @ g.a[j]) * (g.h[chosen[:i]] @ g.h[j])
             ).clamp_min(0.0)  # |g_j - g_c|² for every seed so far
    rows = torch.nonzero(apart[which].double() < 4.0 * (1.0 + SLACK) * nearest).squeeze(1)
    if 2 * rows.numel() > n:
        d = g.sq_distances(chosen[i:i + 1]).squeeze(1)[rows]
    else:
        d = (norms[rows] + norms[j] - 2.0 * rows_dot(g.a, rows, g.a[j]) * rows_dot(g.h, rows, g.h[j])).clamp_min(0.0)
    d = d.double()
    closer = d < nearest[rows]
    nearest[rows[closer]] = d[closer]
    which[rows[closer]] = i


def kmeans_pp_seeding(g: GradientEmbedding, k: int, generator: torch.Generator | None = None) -> Tensor:
    """Positions of ``k`` gradient embeddings chosen as BADGE does (Ash et al. 2020): the largest
    norm first, then each next one drawn with probability ∝ its squared distance to the nearest
    one chosen (k-means++ seeding), from ``generator``. Distances come from the factors (``a``, ``h``),
    never from the dense gradients. Once every remaining distance is 0 the rest are drawn uniformly
    from those not chosen. From ``PRUNE_FROM`` embeddings on, each draw measures only the embeddings
    the new seed can move (:func:`_lower_pruned`)."""
    n = len(g)
    k = max(0, min(int(k), n))
    chosen = torch.empty(k, dtype=torch.long, device=g.a.device)
    if k == 0:
        return chosen
    chosen[0] = g.sq_norms().argmax()
    nearest = g.sq_distances(chosen[:1]).squeeze(1).double()
    free = torch.ones(n, dtype=torch.bool, device=g.a.device)
    free[chosen[0]] = False
    norms = g.sq_norms() if n >= PRUNE_FROM else None
    which = torch.zeros(n, dtype=torch.long, device=g.a.device)
    for i in range(1, k):
        weights = nearest * free
        if not bool(weights.sum() > 0):
            weights = free.double()
        chosen[i] = torch.multinomial(weights, 1, generator=generator)[0]
        free[chosen[i]] = False
        if norms is None:
            nearest = torch.minimum(nearest, g.sq_distances(chosen[i:i + 1]).squeeze(1).double())
        else:
            _lower_pruned(g, chosen, i, nearest, which, norms)
    return chosen


def kmeans(x: Tensor, k: int, generator: torch.Generator | None = None, max_iter: int = 300,
           tol: float = 1e-4) -> Tensor:
    """Cluster index (N,) of each row of ``x`` by k-means (Lloyd's algorithm from k-means++ seeds
    drawn from ``generator``), as scikit-learn's ``KMeans`` runs it by default: at most ``max_iter``
    iterations, stopping once the centers move less than ``tol`` × the mean variance of the
    features (summed squared shifts). An emptied cluster keeps its center."""
    n = x.shape[0]
    k = max(1, min(int(k), n))
    centers = _kmeans_pp(x, k, generator)
    limit = tol * float(x.var(0, correction=0).mean()) if n > 1 else 0.0
    assign = assignments(x, centers)
    for _ in range(max_iter):
        sums = torch.zeros_like(centers).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)
        moved = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
        shift = float((moved - centers).square().sum())
        centers = moved
        assign = assignments(x, centers)
        if shift <= limit:
            break
    return assign


def assignments(x: Tensor, centers: Tensor) -> Tensor:
    """The nearest center of each row of ``x`` (ties to the first), in chunks of rows."""
    step = max(1, ELEMENTS // max(1, centers.shape[0]))
    return torch.cat([sq_distances(x[s:s + step], centers).argmin(1) for s in range(0, x.shape[0], step)])


def _kmeans_pp(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """``k`` rows of ``x`` drawn by k-means++ seeding (Arthur & Vassilvitskii 2007), copied."""
    n = x.shape[0]
    seeds = [int(torch.randint(n, (), generator=generator, device=x.device))]
    closest = sq_distances(x, x[seeds[0]].unsqueeze(0)).squeeze(1).double()
    for _ in range(1, k):
        weights = closest if bool(closest.sum() > 0) else torch.ones_like(closest)
        seeds.append(int(torch.multinomial(weights, 1, generator=generator)[0]))
        closest = torch.minimum(closest, sq_distances(x, x[seeds[-1]].unsqueeze(0)).squeeze(1).double())
    return x[seeds].clone()


def _greedy_kmeans_pp(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """``k`` rows of ``x`` by greedy k-means++, as scikit-learn seeds: each next seed the best of
    ``2 + ln k`` rows drawn with probability ∝ their squared distance to the nearest seed (the one that
    leaves the smallest sum of those distances)."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    seeds = [int(torch.randint(n, (), generator=generator, device=x.device))]
    closest = sq_distances(x, x[seeds[0]].unsqueeze(0)).squeeze(1).double()
    for _ in range(1, k):
        weights = closest if bool(closest.sum() > 0) else torch.ones_like(closest)
        drawn = torch.multinomial(weights, trials, replacement=True, generator=generator)
        after = torch.minimum(closest.unsqueeze(1), sq_distances(x, x[drawn]).double())
        best = int(after.sum(0).argmin())
        seeds.append(int(drawn[best]))
        closest = after[:, best]
    return x[seeds].clone()


def minibatch_kmeans(x: Tensor, k: int, generator: torch.Generator | None = None, batch_size: int = 5000,
                     max_iter: int = 100, max_no_improvement: int = 10) -> Tensor:
    """Cluster index (N,) of each row of ``x`` by mini-batch k-means (Sculley 2010), as scikit-learn's
    ``MiniBatchKMeans(batch_size=5000)`` runs it, the k-means TypiClust's authors use above 50 clusters:
    k-means++ seeds from a random sample of ``3 · batch_size`` rows (at least ``3 k``); then steps on
    batches of ``batch_size`` rows drawn with replacement, each moving a center to the running mean of
    every row ever assigned to it (``c ← (c · w + Σ batch rows) / (w + m)``, ``w`` the rows so far); at
    most ``max_iter`` passes' worth of steps, stopping once the smoothed batch inertia has not improved
    for ``max_no_improvement`` steps; finally each row goes to its nearest center (one pass over ``x``, in
    chunks). The seeding is greedy k-means++ (``2 + ln k`` draws per seed, the one that lowers the sum of
    squared distances most kept) and, as scikit-learn does, every ``10 k`` rows seen (or while a center
    has none) the centers that got under 1 % of the largest center's rows move to random rows of the
    batch. Time and memory are linear in the rows."""
    n = x.shape[0]
    k = max(1, min(int(k), n))
    batch_size = max(1, min(int(batch_size), n))
    sample = torch.randint(n, (min(n, max(3 * batch_size, 3 * k)),), generator=generator, device=x.device)
    centers = _greedy_kmeans_pp(x[sample], k, generator)
    counts = torch.zeros(k, dtype=x.dtype, device=x.device)
    smoothing = min(1.0, 2.0 * batch_size / (n + 1))
    smoothed: float | None = None
    best, stale, since_reassign = float("inf"), 0, 0
    for step in range(max(1, max_iter * n // batch_size)):
        batch = x[torch.randint(n, (batch_size,), generator=generator, device=x.device)]
        d = sq_distances(batch, centers)
        inertia, assign = d.min(1)
        sums = torch.zeros_like(centers).index_add_(0, assign, batch)
        added = torch.bincount(assign, minlength=k).to(x.dtype)
        seen = counts + added
        centers = torch.where((added > 0).unsqueeze(1),
                              (centers * counts.unsqueeze(1) + sums) / seen.clamp_min(1).unsqueeze(1), centers)
        counts = seen
        since_reassign += batch_size
        if bool((counts == 0).any()) or since_reassign >= 10 * k:
            since_reassign = 0
            starved = counts < 0.01 * counts.max()
            if int(starved.sum()) > batch_size // 2:
                starved[torch.argsort(counts, stable=True)[batch_size // 2:]] = False
            moved = int(starved.sum())
            if moved and moved < k:
                rows = torch.randperm(batch_size, generator=generator, device=x.device)[:moved]
                centers[starved] = batch[rows]
                counts[starved] = counts[~starved].min()
        if step == 0:
            continue  # scikit-learn leaves the first step out of the stopping rule
        mean = float(inertia.mean())
        smoothed = mean if smoothed is None else smoothed * (1 - smoothing) + mean * smoothing
        if smoothed < best:
            best, stale = smoothed, 0
        else:
            stale += 1
            if stale >= max_no_improvement:
                break
    return assignments(x, centers)


def typicality(x: Tensor, neighbours: int, search: Method = "exact", generator: torch.Generator | None = None
               ) -> Tensor:
    """TypiClust's typicality (N,) of each row among the rows of ``x`` (Hacohen et al. 2022):
    ``1 / (mean squared distance to its nearest neighbours + 1e-5)``, over ``neighbours`` of them
    (itself excluded). Squared distances, as the authors' code measures them (faiss ``IndexFlatL2``).
    The neighbours are exact (in chunks of rows), or found as ``search`` says
    (:func:`sslzoo._ops.neighbours.nearest`; ``"auto"``: approximately above
    :data:`sslzoo._ops.neighbours.EXACT_UP_TO` rows, the trees drawn from ``generator``)."""
    n = x.shape[0]
    neighbours = max(1, min(int(neighbours), n - 1))
    if n < 2:
        return torch.ones(n, dtype=x.dtype, device=x.device)
    dist, _ = nearest(x, neighbours, search, _exact_neighbours, generator)
    return 1.0 / (dist.to(x.dtype).mean(1) + 1e-5)


def _exact_neighbours(x: Tensor, neighbours: int) -> tuple[Tensor, Tensor]:
    """The ``neighbours`` nearest other rows of each row of ``x``: (squared distances, positions), in
    chunks of rows."""
    n = x.shape[0]
    values = torch.empty(n, neighbours, dtype=x.dtype, device=x.device)
    index = torch.empty(n, neighbours, dtype=torch.long, device=x.device)
    step = max(1, ELEMENTS // n)
    for start in range(0, n, step):
        d = sq_distances(x[start:start + step], x)
        rows = torch.arange(d.shape[0], device=x.device)
        d[rows, rows + start] = torch.inf  # itself
        values[start:start + step], index[start:start + step] = d.topk(neighbours, dim=1, largest=False)
    return values, index
