"""ProbCover, for the low-budget regime: ``probcover``.

With few labels, a batch should cover the data: ProbCover queries the points whose δ-balls hold the
most points not yet covered by the balls of the labeled points and of the picks before them (a
greedy maximum coverage, the paper's Algorithm 1: (i) pick the point of largest out-degree in the
δ-ball graph, (ii) remove the edges into every point it covers). δ is the largest of 0.2, 0.4, …,
2.0 (scikit-activeml's grid) at which at least ``alpha`` = 0.95 of the balls are *pure*: they hold
only points of their centre's k-means cluster, with as many clusters as classes (the paper's choice
of δ, as scikit-activeml computes it); the ``delta`` option fixes it instead. See
:mod:`sslzoo._ops.coverage`.

The points are the labeled ids and the candidates, each row L2-normalised (the authors' code
normalises its self-supervised features, so distances lie in [0, 2], the scale of the δ grid). The
paper uses a self-supervised embedding (SimCLR), which ``--pretrain simclr`` with
``pretrain_use=probe`` and ``features=model`` gives (:mod:`sslzoo._engine.pretraining`); the ``features``
option offers the raw inputs (default, for TypiClust's reason: a representation that does not
depend on the few labels held) or the model's embedding (:meth:`sslzoo._contract.context.Context.embed`).

**Cost.** The δ-ball graph and the purity compare every pair of points: time ``n²·D`` per round for
n = labeled + candidates, in chunks of at most 4M distances, memory the graph's edges. So that the
cost per round stays linear in the pool, the candidates are by default a seeded random subset of
``pool_subset`` = 10,000 pool ids (drawn anew each round, in time linear in the pool); with
``pool_subset=0`` the whole pool is scored and the cost grows as its square. The coverage of a
uniform subset estimates the coverage of the pool, which is the probability ProbCover maximises.
Where sslzoo differs from scikit-activeml: δ and the k-means clusters are recomputed each round (its
``query`` keeps them unless asked to update; the model's embedding changes between rounds), with
the number of classes of the dataset (not of the labels held), and the graph is sparse.

Reference: Yehuda, O., Dekel, A., Hacohen, G. & Weinshall, D. (2022). Active Learning Through a
Covering Lens. Advances in Neural Information Processing Systems 35 (NeurIPS 2022).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._ops.coverage import delta_by_purity, max_coverage, radius_graph
from sslzoo._strategies.active import ActiveOptions, BatchStrategy
from sslzoo._strategies.diversity import kmeans

YEHUDA_2022 = ("Yehuda, O., Dekel, A., Hacohen, G. & Weinshall, D. (2022). Active Learning Through a Covering "
               "Lens. Advances in Neural Information Processing Systems 35 (NeurIPS 2022)")

DELTAS = tuple(round(0.2 * i, 1) for i in range(1, 11))
"""The δ tried by purity: scikit-activeml's default grid, 0.2 to 2.0 (distances of unit rows lie in [0, 2])."""


@dataclass
class ProbCoverOptions(ActiveOptions):
    """ProbCover's options: purity 0.95 as the paper, and 10,000 candidates per round."""

    pool_subset: int = field(default=10_000, metadata={
        "min": 0, "help": "score a seeded random subset of this many pool ids per round (0: the whole pool, "
                          "whose δ-ball graph costs time quadratic in it)"})
    features: Literal["inputs", "model"] = field(default="inputs", metadata={
        "help": "what is covered: the raw inputs (flattened), or the model's embedding (the input of its last "
                "linear layer); each row L2-normalised; the paper used a self-supervised embedding"})
    alpha: float = field(default=0.95, metadata={
        "min": 0.0, "max": 1.0, "help": "δ is the largest of 0.2, 0.4, ..., 2.0 at which this share of the "
                                        "δ-balls holds one k-means cluster only"})
    delta: float = field(default=0.0, metadata={
        "min": 0.0, "help": "the ball radius δ in the normalised space (0: chosen by purity, see alpha)"})


class ProbCover(BatchStrategy):
    """Query the candidates whose δ-balls cover the most points not yet covered (greedy max coverage)."""

    name = "probcover"
    paper = YEHUDA_2022
    summary = "ProbCover (low budget): greedy max coverage of δ-balls, δ chosen by k-means purity"
    Options: ClassVar[type] = ProbCoverOptions
    options: ProbCoverOptions

    def features(self, ctx: Context, ids: Tensor) -> Tensor:
        """The rows that are covered: ``ids``' raw inputs (flattened) or their embedding, L2-normalised."""
        rows = ctx.embed(ids) if self.options.features == "model" else ctx.x[ids].flatten(1).float()
        return F.normalize(rows, dim=1)

    def radius(self, ctx: Context, x: Tensor) -> float:
        """δ: the ``delta`` option, or the largest δ of :data:`DELTAS` with ``alpha`` pure balls."""
        if self.options.delta > 0:
            return self.options.delta
        clusters = kmeans(x, max(2, ctx.num_classes), ctx.generator)
        return delta_by_purity(x, clusters, torch.tensor(DELTAS, dtype=torch.float64), self.options.alpha)

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        labeled = ctx.labeled_ids()
        x = self.features(ctx, torch.cat([labeled, ids]))
        rows, cols = radius_graph(x, self.radius(ctx, x))
        n_labeled = labeled.numel()
        positions = torch.arange(x.shape[0], device=x.device)
        picks = max_coverage(rows, cols, x.shape[0], positions[:n_labeled], positions[n_labeled:], k, ctx.generator)
        return ids[picks - n_labeled]


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(ProbCover)
