"""Graph-based semi-supervised learning: a sparse k-nearest-neighbour graph and label propagation / spreading.

Everything runs on the tensors' device, and nothing of size N × N is ever built:

* :func:`knn` finds each row's ``k`` nearest rows by squared Euclidean distance a tile of distances at
  a time (256 rows × 2048 columns on the CPU, 2 MB, reduced while in the cache; blocks of whole rows on
  a GPU, 2**25 distances), each tile reduced at once to the minima of groups of 32 columns, then the
  ``k`` nearest found among the ``k`` groups of smallest minima;
* :func:`knn_graph` makes the symmetric affinity ``W`` from them (or, for a large pool, from the
  approximate neighbours of :func:`sslzoo._ops.neighbours.approximate_knn`, linear in the rows; see
  ``neighbours``): an edge ``i - j`` when ``j`` is among
  the ``n_neighbors`` nearest of ``i`` or ``i`` among those of ``j`` (``W = max(A, Aᵀ)`` for the directed
  kNN adjacency ``A``), weighing 1 (``kernel="knn"``, scikit-learn's connectivity kernel) or
  ``exp(-gamma · |x_i - x_j|²)`` (``kernel="rbf"``, the RBF kernel restricted to the kNN edges); no
  self-loops. It is stored as a :class:`Graph`: coalesced coordinates, ``N · n_neighbors`` to
  ``2 · N · n_neighbors`` edges;
* :func:`label_propagation` and :func:`label_spreading` iterate sparse (CSR) × dense products of an
  N × C label matrix, in float64 by default, as scikit-learn's ``LabelPropagation`` and
  ``LabelSpreading`` do: the same iterations, the same stopping rule (the sum of the absolute
  changes of the label matrix below ``tol``, checked before each product, at most ``max_iter``
  products) and the same final row normalisation. Given the same graph (scikit-learn takes it as a
  callable kernel), they give scikit-learn's label distributions.

Label propagation (Zhu & Ghahramani 2002), in scikit-learn's form: ``P = D⁻¹W`` (``D`` the degrees);
``Y ← P Y``, each row normalised to sum 1, the labeled rows clamped back to their one-hot labels; its
fixed point is the harmonic solution ``Y_u = (I - P_uu)⁻¹ P_ul Y_l``.

Label spreading (Zhou et al. 2004): ``S = D^(-1/2) W D^(-1/2)``; ``F ← alpha · S F + (1 - alpha) · Y``
with ``Y`` the one-hot labels (zero rows for the unlabeled); labels are soft-clamped (a labeled node
may change its mind when its neighbours disagree); ``F`` converges to ``(1 - alpha)(I - alpha S)⁻¹ Y``.

A node that no path joins to a labeled node gets an all-zero distribution (:attr:`Propagation.reached`
says which did not).

References:

* Xiaojin Zhu and Zoubin Ghahramani. Learning from Labeled and Unlabeled Data with Label Propagation.
  Technical Report CMU-CALD-02-107, Carnegie Mellon University, 2002.
* Dengyong Zhou, Olivier Bousquet, Thomas Navin Lal, Jason Weston and Bernhard Schölkopf. Learning with
  Local and Global Consistency. Advances in Neural Information Processing Systems 16 (NIPS 2003),
  pp. 321-328, MIT Press, 2004.
* scikit-learn's ``sklearn.semi_supervised.LabelPropagation`` and ``LabelSpreading`` (Pedregosa et al.,
  Scikit-learn: Machine Learning in Python, JMLR 12:2825-2830, 2011), whose kNN kernel and defaults
  (``n_neighbors=7``, ``alpha=0.2``, ``max_iter`` 1000 and 30, ``tol=1e-3``) these follow.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sslzoo._ops.neighbours import Method, nearest

__all__ = ["ELEMENTS", "Graph", "Propagation", "knn", "knn_graph", "label_propagation", "label_spreading",
           "pca", "predict", "standardize"]

ELEMENTS = 2**19
"""Distances held at once by :func:`knn` on the CPU: a 256 × 2048 tile (2 MB in float32), which stays in the
cache while it is reduced; ``CUDA_ELEMENTS`` on a GPU, whose tiles are whole rows."""
CUDA_ELEMENTS = 2**25
TILE = 2048
"""Columns of a tile of distances on the CPU."""
GROUP = 32
"""Columns of a group whose minimum screens the group (see :func:`knn`)."""

Kernel = Literal["knn", "rbf"]


def knn(x: Tensor, k: int, queries: Tensor | None = None, elements: int | None = None) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest rows of ``x`` to each row of ``queries`` (default: to each row of ``x`` itself, which
    is then not its own neighbour), by squared Euclidean distance, in float32 on ``x``'s device.

    Returns ``(squared distances, indices)``, both (m, k), nearest first; ``k`` is cut to the rows there
    are. For a block of query rows, the distances to ``x`` are computed a tile at a time (``TILE``
    columns on the CPU, all of them on a GPU; at most ``elements`` distances at once, ``ELEMENTS`` /
    ``CUDA_ELEMENTS`` by default, one row's at least) and each tile is reduced at once to the minimum
    of each group of ``GROUP`` columns. The ``k`` nearest lie in the ``k`` groups of smallest minima (a
    row outside them has ``k`` group minima, so ``k`` rows, nearer), so only those ``k · GROUP``
    candidates get their exact distance, ``|q - x|²``, and are ranked: never the m × n matrix, and
    one selection per block instead of a full ``topk`` over every row.
    """
    x = x.flatten(1).float()
    own = queries is None
    q = x if queries is None else queries.flatten(1).float().to(x.device)
    n, m = x.shape[0], q.shape[0]
    k = max(0, min(int(k), n - 1 if own else n))
    dist = torch.empty(m, k, dtype=torch.float32, device=x.device)
    index = torch.empty(m, k, dtype=torch.long, device=x.device)
    if k == 0 or m == 0:
        return dist, index
    device = x.device
    elements = elements or (CUDA_ELEMENTS if device.type == "cuda" else ELEMENTS)
    width = n if device.type == "cuda" else min(n, TILE)
    width = max(GROUP, width - width % GROUP)  # whole groups per tile (the last tile is padded)
    step = max(1, elements // width)
    groups = -(-n // GROUP)
    chosen = min(k, groups)
    sq = x.square().sum(1)
    offsets = torch.arange(GROUP, device=device)
    for start in range(0, m, step):
        block = q[start:start + step]
        b = block.shape[0]
        rows = torch.arange(b, device=device) + start
        minima = torch.empty(b, groups, dtype=torch.float32, device=device)
        for col in range(0, n, width):
            # |x_j|² - 2 q_i·x_j ranks row i's neighbours (|q_i|² is the same for the whole row)
            d = torch.addmm(sq[col:col + width].unsqueeze(0), block, x[col:col + width].T, beta=1.0, alpha=-2.0)
            if own:
                inside = (rows >= col) & (rows < col + d.shape[1])
                d[inside.nonzero().squeeze(1), rows[inside] - col] = torch.inf
            if d.shape[1] % GROUP:
                d = F.pad(d, (0, GROUP - d.shape[1] % GROUP), value=torch.inf)
            minima[:, col // GROUP:col // GROUP + d.shape[1] // GROUP] = d.view(b, -1, GROUP).amin(2)
        best = minima.topk(chosen, dim=1, largest=False, sorted=False).indices
        cols = (best.unsqueeze(2) * GROUP + offsets).view(b, chosen * GROUP)
        valid = cols < n
        if own:
            valid &= cols != rows.unsqueeze(1)
        cols = torch.where(valid, cols, torch.zeros_like(cols))
        exact = _candidate_distances(block, x, cols, elements)
        exact = torch.where(valid, exact, torch.full_like(exact, torch.inf))
        values, pick = exact.topk(k, dim=1, largest=False, sorted=True)
        dist[start:start + b] = values
        index[start:start + b] = cols.gather(1, pick)
    return dist, index


def _candidate_distances(block: Tensor, x: Tensor, cols: Tensor, elements: int) -> Tensor:
    """``|block_i - x_cols[i, j]|²`` (b, c), gathering at most ``elements`` input values at once."""
    b, c = cols.shape
    out = torch.empty(b, c, dtype=torch.float32, device=x.device)
    step = max(1, elements // max(1, c * x.shape[1]))
    for start in range(0, b, step):
        diff = x[cols[start:start + step]] - block[start:start + step].unsqueeze(1)
        out[start:start + step] = diff.square().sum(2)
    return out


@dataclass
class Graph:
    """A symmetric sparse affinity matrix ``W`` (n × n) without self-loops: its edges in coalesced
    coordinates (``rows``, ``cols``, sorted by row, then column) with their weights ``values``."""

    n: int
    rows: Tensor
    cols: Tensor
    values: Tensor

    @property
    def edges(self) -> int:
        """Stored entries: each undirected edge twice."""
        return int(self.rows.numel())

    def degrees(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Row sums of ``W`` (n,)."""
        return torch.zeros(self.n, dtype=dtype, device=self.values.device).index_add_(
            0, self.rows, self.values.to(dtype))

    def csr(self, values: Tensor | None = None) -> Tensor:
        """``W`` (or the matrix of the same pattern with ``values``) as a sparse CSR tensor."""
        counts = torch.bincount(self.rows, minlength=self.n)
        crow = torch.zeros(self.n + 1, dtype=torch.long, device=self.rows.device)
        crow[1:] = torch.cumsum(counts, 0)
        with warnings.catch_warnings():  # "sparse CSR support is in beta", "invariant checks are disabled"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(crow, self.cols, self.values if values is None else values,
                                           (self.n, self.n))

    def dense(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """``W`` as a dense n × n tensor: for tests on small graphs only."""
        out = torch.zeros(self.n, self.n, dtype=dtype, device=self.values.device)
        out[self.rows, self.cols] = self.values.to(dtype)
        return out


def knn_graph(x: Tensor, n_neighbors: int = 7, kernel: Kernel = "knn", gamma: float = 20.0,
              elements: int | None = None, neighbours: Method = "exact",
              generator: torch.Generator | None = None) -> Graph:
    """The symmetric kNN graph of the rows of ``x`` (flattened): ``i - j`` when either is among the other's
    ``n_neighbors`` nearest, weighing 1 (``kernel="knn"``) or ``exp(-gamma |x_i - x_j|²)`` (``"rbf"``).
    The neighbours come from :func:`knn` (``elements``: the distances it holds at once) or, as
    ``neighbours`` says (``"auto"``: above :data:`sslzoo._ops.neighbours.EXACT_UP_TO` rows), from
    :func:`sslzoo._ops.neighbours.approximate_knn` (its trees' directions drawn from ``generator``)."""
    if kernel not in ("knn", "rbf"):
        raise ValueError(f"unknown kernel {kernel!r}; allowed: knn, rbf")
    n = x.shape[0]
    dist, index = nearest(x.flatten(1).float(), n_neighbors, neighbours,
                          lambda rows, k: knn(rows, k, elements=elements), generator)
    device = dist.device
    k = index.shape[1]
    rows = torch.arange(n, device=device).repeat_interleave(k)
    cols = index.flatten()
    d = dist.flatten()
    keys = torch.cat([rows * n + cols, cols * n + rows])  # both directions: W = max(A, Aᵀ)
    unique, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    # the two directions of an edge may differ by rounding: each keeps the larger, so W stays symmetric
    merged = torch.zeros(unique.numel(), dtype=d.dtype, device=device).scatter_reduce_(
        0, inverse, torch.cat([d, d]), "amax", include_self=False)
    values = torch.ones_like(merged) if kernel == "knn" else torch.exp(-float(gamma) * merged)
    return Graph(n, unique // n, unique % n, values)


@dataclass
class Propagation:
    """The result of :func:`label_propagation` or :func:`label_spreading`.

    ``distributions`` (n, C): each node's label distribution, rows normalised to sum 1 (all zero for a
    node no labeled node reaches); ``iterations``: the sparse products done; ``converged``: whether the
    change fell below ``tol`` before ``max_iter``.
    """

    distributions: Tensor
    iterations: int
    converged: bool

    @property
    def reached(self) -> Tensor:
        """Whether each node got any label mass (bool, n)."""
        return self.distributions.sum(1) > 0

    def labels(self) -> tuple[Tensor, Tensor]:
        """(confidence, label) of each node: the largest probability of its distribution and its class."""
        return self.distributions.max(dim=1)


def _one_hot(n: int, seeds: Tensor, labels: Tensor, num_classes: int, dtype: torch.dtype, device: torch.device
             ) -> Tensor:
    y = torch.zeros(n, num_classes, dtype=dtype, device=device)
    y[seeds.to(device), labels.to(device)] = 1.0
    return y


def _normalise_rows(y: Tensor) -> Tensor:
    total = y.sum(1, keepdim=True)
    return y / torch.where(total == 0, torch.ones_like(total), total)


SMALL = 2**16
"""A label matrix of at most this many entries is iterated on one CPU thread (see :func:`_iterate`)."""


@contextlib.contextmanager
def _threads_for(y: Tensor) -> Iterator[None]:
    """One intra-op thread while iterating a small label matrix on the CPU: each step is a few
    microseconds of work, and the fork and join of a thread team per operation cost more than that (on a
    loaded machine, milliseconds); the thread count is restored afterwards."""
    before = torch.get_num_threads()
    if y.device.type != "cpu" or y.numel() > SMALL or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _iterate(step: Callable[[Tensor], Tensor], y: Tensor, max_iter: int, tol: float) -> tuple[Tensor, int, bool]:
    """scikit-learn's loop: before each of at most ``max_iter`` steps, stop once the last step changed
    the label matrix by less than ``tol`` in sum of absolute values."""
    previous = torch.zeros_like(y)
    with _threads_for(y):
        for done in range(max_iter):
            if float((y - previous).abs().sum()) < tol:
                return y, done, True
            previous, y = y, step(y)
    return y, max_iter, False


def _check(graph: Graph, seeds: Tensor, labels: Tensor, num_classes: int) -> None:
    if seeds.shape != labels.shape or seeds.dim() != 1:
        raise ValueError(f"seeds {tuple(seeds.shape)} and labels {tuple(labels.shape)} must be two 1-D tensors "
                         f"of the same length")
    if seeds.numel() and (int(seeds.min()) < 0 or int(seeds.max()) >= graph.n):
        raise ValueError(f"seed positions must lie in [0, {graph.n})")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")


def label_propagation(graph: Graph, seeds: Tensor, labels: Tensor, num_classes: int, max_iter: int = 1000,
                      tol: float = 1e-3, dtype: torch.dtype = torch.float64) -> Propagation:
    """Label propagation (Zhu & Ghahramani 2002) from the nodes ``seeds`` (positions) with ``labels``
    over ``graph``: ``Y ← D⁻¹W Y``, rows normalised, seeds clamped to their one-hot labels."""
    _check(graph, seeds, labels, num_classes)
    device = graph.values.device
    degrees = graph.degrees(dtype)
    degrees = torch.where(degrees == 0, torch.ones_like(degrees), degrees)
    transition = graph.csr(graph.values.to(dtype) / degrees[graph.rows])
    clamped = _one_hot(graph.n, seeds, labels, num_classes, dtype, device)
    free = torch.ones(graph.n, 1, dtype=torch.bool, device=device)
    free[seeds.to(device)] = False

    def step(y: Tensor) -> Tensor:
        return torch.where(free, _normalise_rows(transition @ y), clamped)

    y, iterations, converged = _iterate(step, clamped.clone(), max_iter, tol)
    return Propagation(_normalise_rows(y), iterations, converged)


def label_spreading(graph: Graph, seeds: Tensor, labels: Tensor, num_classes: int, alpha: float = 0.2,
                    max_iter: int = 30, tol: float = 1e-3, dtype: torch.dtype = torch.float64) -> Propagation:
    """Label spreading (Zhou et al. 2004) from the nodes ``seeds`` (positions) with ``labels`` over
    ``graph``: ``F ← alpha · D^(-1/2) W D^(-1/2) F + (1 - alpha) · Y``, rows normalised at the end."""
    _check(graph, seeds, labels, num_classes)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    device = graph.values.device
    degrees = graph.degrees(dtype)
    scale = torch.where(degrees == 0, torch.ones_like(degrees), degrees).rsqrt()
    spread = graph.csr(graph.values.to(dtype) * scale[graph.rows] * scale[graph.cols])
    start = _one_hot(graph.n, seeds, labels, num_classes, dtype, device)
    anchor = (1.0 - alpha) * start

    def step(f: Tensor) -> Tensor:
        return alpha * (spread @ f) + anchor

    f, iterations, converged = _iterate(step, start.clone(), max_iter, tol)
    return Propagation(_normalise_rows(f), iterations, converged)


def predict(distributions: Tensor, x: Tensor, queries: Tensor, n_neighbors: int = 7,
            elements: int | None = None) -> Tensor:
    """Label distributions (m, C) of new points ``queries``: the normalised sum of the distributions of
    their ``n_neighbors`` nearest nodes among the rows of ``x`` (scikit-learn's ``predict_proba`` with
    the kNN kernel)."""
    _, index = knn(x, n_neighbors, queries=queries, elements=elements)
    return _normalise_rows(distributions[index].sum(1))


def standardize(x: Tensor) -> Tensor:
    """Each column of ``x`` (flattened, float32) centred and scaled to unit variance (a constant column
    is only centred)."""
    x = x.flatten(1).float()
    std = x.std(0, correction=0)
    return (x - x.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))


def pca(x: Tensor, components: int, fit_on: Tensor | None = None) -> Tensor:
    """The rows of ``x`` (flattened) projected on the top ``components`` principal axes of ``fit_on``
    (default ``x``), centred as scikit-learn's ``PCA``: the eigenvectors of the covariance matrix
    (accumulated in blocks of rows, eigendecomposed in float64); each axis signed so that its largest
    coordinate is positive, so the projection does not depend on the eigensolver's signs."""
    x = x.flatten(1).float()
    fit = x if fit_on is None else fit_on.flatten(1).float()
    d = x.shape[1]
    components = max(1, min(int(components), d))
    mean = fit.mean(0)
    cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
    step = max(1, 2**24 // d)  # rows of a block: 64 MB of float32 inputs
    for start in range(0, fit.shape[0], step):
        block = fit[start:start + step] - mean
        cov += (block.T @ block).double()
    _, vectors = torch.linalg.eigh(cov)  # ascending eigenvalues
    axes = vectors[:, -components:].flip(1)
    signs = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))
    axes = (axes * torch.where(signs == 0, torch.ones_like(signs), signs)).float()
    return (x - mean) @ axes
