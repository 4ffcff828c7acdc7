"""Graph-based pseudo-labelers: ``label_propagation`` (Zhu & Ghahramani 2002) and ``label_spreading``
(Zhou et al. 2004), on a sparse kNN graph built on the device in chunks (:mod:`sslzoo._ops.graph`).

Round 0 trains on the labeled set. Each later round builds a symmetric kNN graph over every training
id the run holds (the oracle-labeled, the pseudo-labeled and the pool; not the ids the split holds
out), on

* ``features=inputs``: the inputs, flattened, optionally standardized per feature (``standardize``)
  and projected on their top ``pca`` principal axes (fitted on those ids); the graph is built once
  and kept for the rest of the run, as it never changes;
* ``features=model``: the model's embedding (:meth:`sslzoo._contract.context.Context.embed`, the input of its
  last linear layer), built anew each round from the model of that round.

The neighbours are exact up to 20,000 points and approximate above (``knn_search``; random-projection
trees refined by neighbour descent, :mod:`sslzoo._ops.neighbours`, linear in the points where the exact
search is quadratic).

It propagates the one-hot labels of the oracle-labeled ids — the labels the ledger holds for them,
which the engine gives every strategy; never a label of another id — over the graph, and accepts
pool ids with the argmax of their propagated distribution as a frozen pseudo-label (its largest
probability its confidence): all of them (``criterion=all``, the transduction of scikit-learn's
estimators), those whose confidence is at least ``threshold``, or the ``k_best`` most confident. A
pool id that no path of the graph joins to a labeled id has no label mass and is never accepted. The
model then retrains on the labeled and pseudo-labeled ids (``retrain``), and the run stops after
``max_rounds`` rounds of acceptance, when nothing is accepted, or when the pool is empty.

As the second part of a composition (``margin+label_spreading``) the active learner queries first
each round and the propagation labels what is left of the pool, from the labels held so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.labels import HELD_OUT, ORACLE, Labels
from sslzoo._contract.strategy import Strategy, TrainOptions
from sslzoo._ops import graph
from sslzoo._ops.neighbours import EXACT_UP_TO
from sslzoo.errors import OptionError

SCIKIT_LEARN = ("with scikit-learn's kNN kernel and defaults (sklearn.semi_supervised; Pedregosa et al., "
                "Scikit-learn: Machine Learning in Python, JMLR 12:2825-2830, 2011)")
ZHU_2002 = ("Xiaojin Zhu and Zoubin Ghahramani. Learning from Labeled and Unlabeled Data with Label Propagation. "
            "Technical Report CMU-CALD-02-107, Carnegie Mellon University, 2002")
ZHOU_2004 = ("Dengyong Zhou, Olivier Bousquet, Thomas Navin Lal, Jason Weston and Bernhard Schölkopf. Learning with "
             "Local and Global Consistency. Advances in Neural Information Processing Systems 16 (NIPS 2003), "
             "pp. 321-328, MIT Press, 2004")


@dataclass
class GraphOptions(TrainOptions):
    """Options of both graph pseudo-labelers: scikit-learn's kNN kernel and defaults."""

    features: Literal["inputs", "model"] = field(default="inputs", metadata={
        "help": "the graph's points: the inputs (flattened; see standardize, pca), or the model's embedding "
                "(the input of its last linear layer), recomputed each round"})
    standardize: bool = field(default=False, metadata={
        "help": "features=inputs: centre each input feature and scale it to unit variance first"})
    pca: int = field(default=0, metadata={
        "min": 0, "help": "features=inputs: project on this many principal axes first (0: no projection)"})
    kernel: Literal["knn", "rbf"] = field(default="knn", metadata={
        "help": "edge weights of the symmetric kNN graph: 1 (scikit-learn's knn kernel) or exp(-gamma d^2) "
                "(an RBF kernel on the kNN edges only)"})
    n_neighbors: int = field(default=7, metadata={
        "min": 1, "help": "nearest neighbours of each point (an edge joins i and j when either is among the "
                          "other's)"})
    knn_search: Literal["auto", "exact", "approximate"] = field(default="auto", metadata={
        "help": "how the neighbours are found: exactly (every pair of points; quadratic in the points), "
                "approximately (random-projection trees and neighbour descent; about linear), or auto: exactly "
                f"up to {EXACT_UP_TO} points, approximately above"})
    gamma: float = field(default=20.0, metadata={
        "min": 0.0, "help": "kernel=rbf: the weight of an edge is exp(-gamma * squared distance)"})
    max_iter: int = field(default=1000, metadata={"min": 1, "help": "propagation steps at most"})
    tol: float = field(default=1e-3, metadata={
        "min": 0.0, "help": "stop once a step changes the label matrix by less than this (sum of absolute "
                            "changes over every id and class, as scikit-learn)"})
    criterion: Literal["all", "threshold", "k_best"] = field(default="all", metadata={
        "help": "which pool ids a round pseudo-labels: every one the labels reach, those whose confidence is at "
                "least threshold, or the k_best most confident"})
    threshold: float = field(default=0.8, metadata={
        "min": 0.0, "max": 1.0, "help": "criterion=threshold: accept ids whose propagated probability is at least "
                                        "this"})
    k_best: int = field(default=100, metadata={
        "min": 1, "help": "criterion=k_best: the k most confident pool ids per round"})
    max_rounds: int = field(default=1, metadata={"min": 0, "help": "rounds of acceptance at most"})
    weighting: Literal["1", "confidence"] = field(default="1", metadata={
        "help": "loss weight of a pseudo-label: 1, or its propagated probability"})


@dataclass
class PropagationOptions(GraphOptions):
    """Label propagation's options: scikit-learn's ``LabelPropagation(kernel="knn")``."""


@dataclass
class SpreadingOptions(GraphOptions):
    """Label spreading's options: scikit-learn's ``LabelSpreading(kernel="knn")`` (alpha 0.2, 30 steps)."""

    alpha: float = field(default=0.2, metadata={
        "min": 0.0, "max": 1.0, "help": "clamping factor, strictly between 0 and 1: the share of a point's label "
                                        "taken from its neighbours at each step (Zhou et al. used 0.99)"})
    max_iter: int = field(default=30, metadata={"min": 1, "help": "propagation steps at most"})

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise OptionError(f"option alpha={self.alpha} of strategy 'label_spreading' is not allowed: it must lie "
                              f"strictly between 0 and 1 (0 keeps the labels where they are, 1 forgets them)")


class GraphPseudoLabeler(Strategy):
    """Base of the graph pseudo-labelers: build the graph, propagate the oracle labels, accept pool ids."""

    family = "ssl"
    Options: ClassVar[type] = GraphOptions
    options: GraphOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._graph: tuple[Tensor, graph.Graph] | None = None  # features=inputs: the nodes and their graph
        self._table: tuple[Tensor, Tensor, Tensor] | None = None  # the last propagation: nodes, labels, confidence

    def propagate(self, g: graph.Graph, seeds: Tensor, labels: Tensor, num_classes: int) -> graph.Propagation:
        """The label distributions of every node of ``g`` from the labeled nodes ``seeds``."""
        raise NotImplementedError

    def check(self, ctx: Context) -> None:
        """``pca`` cannot exceed the inputs' dimension."""
        dims = int(torch.tensor(ctx.x.shape[1:]).prod()) if ctx.x.dim() > 1 else 1
        if self.options.features == "inputs" and self.options.pca > dims:
            raise OptionError(f"option pca={self.options.pca} of strategy {self.name!r} is not allowed here: the "
                              f"inputs have {dims} features (use pca <= {dims}, or 0 for none)")

    def stop(self, ctx: Context) -> str | None:
        """``max_rounds`` once that many rounds of acceptance are done (round r follows r - 1 of them)."""
        return "max_rounds" if ctx.round - 1 >= self.options.max_rounds else None

    # -- the graph -----------------------------------------------------------------------------
    def points(self, ctx: Context, nodes: Tensor) -> Tensor:
        """The rows the graph joins: the inputs of ``nodes`` (standardized, projected) or their embedding."""
        o = self.options
        if o.features == "model":
            return ctx.embed(nodes)
        x = ctx.x[nodes].flatten(1).float()
        if o.standardize:
            x = graph.standardize(x)
        if o.pca:
            x = graph.pca(x, o.pca)
        return x

    def build_graph(self, ctx: Context, nodes: Tensor) -> graph.Graph:
        """The kNN graph over ``nodes``, kept while the nodes and the features stay the same."""
        if self._graph is not None and torch.equal(self._graph[0], nodes):
            return self._graph[1]
        o = self.options
        g = graph.knn_graph(self.points(ctx, nodes), o.n_neighbors, o.kernel, o.gamma, neighbours=o.knn_search,
                            generator=ctx.generator)
        self._graph = (nodes, g) if o.features == "inputs" else None
        return g

    def distribution(self, ctx: Context) -> tuple[Tensor, Tensor, Tensor]:
        """(nodes, label, confidence) of every training id the run holds, from this round's propagation of
        the oracle labels (confidence 0 where no labeled id reaches)."""
        ledger = ctx.ledger
        nodes = torch.nonzero(ledger.source != HELD_OUT).flatten()
        seeds = torch.nonzero(ledger.source[nodes] == ORACLE).flatten()
        g = self.build_graph(ctx, nodes)
        result = self.propagate(g, seeds, ledger.target[nodes[seeds]], ctx.num_classes)
        confidence, labels = result.labels()
        return nodes, labels, confidence.float()

    # -- the hooks -----------------------------------------------------------------------------
    def select(self, ctx: Context, pool: Tensor) -> Tensor:
        """The pool ids the criterion accepts among those the labels reach (this round's propagation,
        which ``label`` reads)."""
        candidates = pool
        if candidates.numel() == 0:
            return candidates[:0]
        nodes, labels, confidence = self._table = self.distribution(ctx)
        candidates = candidates.sort().values  # the order offered does not matter
        where = torch.searchsorted(nodes, candidates)
        score = confidence[where]
        keep = score > 0
        o = self.options
        if o.criterion == "threshold":
            keep &= score >= o.threshold
        elif o.criterion == "k_best":
            reached = torch.nonzero(keep).flatten()
            order = torch.sort(score[reached], descending=True, stable=True).indices[:o.k_best]
            keep = torch.zeros_like(keep)
            keep[reached[order]] = True
        return candidates[keep]

    def label(self, ctx: Context, ids: Tensor) -> Labels:
        """The argmax of each id's propagated distribution, its probability as the confidence."""
        if self._table is None:
            self._table = self.distribution(ctx)
        nodes, labels, confidence = self._table
        where = torch.searchsorted(nodes, ids)
        return Labels.pseudo(ids, labels[where], confidence[where])

    def weight(self, ctx: Context, labels: Labels) -> Tensor:
        """1 per pseudo-label, or its propagated probability (``weighting=confidence``)."""
        if self.options.weighting == "confidence":
            return labels.confidence.clone()
        return torch.ones_like(labels.confidence)


class LabelPropagation(GraphPseudoLabeler):
    """Zhu & Ghahramani (2002): the oracle labels spread over a kNN graph by ``Y ← D⁻¹W Y`` (rows normalised,
    labeled ids clamped to their labels) until it settles; the pool's argmax become pseudo-labels for training."""

    name = "label_propagation"
    paper = f"{ZHU_2002}; {SCIKIT_LEARN}"
    summary = "label propagation over a kNN graph of the inputs or the model's features; the pool's propagated " \
              "labels become pseudo-labels"
    Options: ClassVar[type] = PropagationOptions

    def propagate(self, g: graph.Graph, seeds: Tensor, labels: Tensor, num_classes: int) -> graph.Propagation:
        return graph.label_propagation(g, seeds, labels, num_classes, self.options.max_iter, self.options.tol)


class LabelSpreading(GraphPseudoLabeler):
    """Zhou et al. (2004): ``F ← alpha · D^(-1/2) W D^(-1/2) F + (1 - alpha) · Y`` over a kNN graph (labels
    soft-clamped); the pool's argmax become pseudo-labels for training."""

    name = "label_spreading"
    paper = f"{ZHOU_2004}; {SCIKIT_LEARN}"
    summary = "label spreading (normalised graph, soft clamping) over a kNN graph; the pool's labels become " \
              "pseudo-labels"
    Options: ClassVar[type] = SpreadingOptions
    options: SpreadingOptions

    def propagate(self, g: graph.Graph, seeds: Tensor, labels: Tensor, num_classes: int) -> graph.Propagation:
        o = self.options
        return graph.label_spreading(g, seeds, labels, num_classes, o.alpha, o.max_iter, o.tol)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(LabelPropagation)
    register(LabelSpreading)
