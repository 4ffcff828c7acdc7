"""Active learning: the :class:`ActiveStrategy` base and its uncertainty and MC-dropout flavours.

An active-learning strategy trains on its labeled set, then, round after round, scores the
unlabeled pool, queries the ``query_size`` highest-scoring ids, gets their labels from the
oracle (the hidden ground truth in a benchmark) and retrains, until the labeled set holds
``budget`` oracle labels (the starting ``--labels`` included) or the pool is empty.

* Scoring is :meth:`ActiveStrategy.score` (one number per id, higher = more worth querying);
  subclasses override only it. :class:`UncertaintyStrategy` scores one deterministic pass
  (``ctx.predict``) with a function of :mod:`sslzoo.scores`; :class:`MCDropoutStrategy` scores
  ``passes`` MC-dropout passes (``ctx.predict_mc``), chunked to bound memory.
* Picking is :func:`sslzoo._ops.picking.top_k` (random tie-break, global ids) by default. The
  ``sampling`` option of every scoring strategy draws the batch instead, ∝ ``score ** β``
  (``power``), ``exp(β * score)`` (``softmax``) or ``rank ** -β`` (``softrank``), β the
  ``sampling_beta`` option (named so that it leaves a strategy's own ``beta`` alone), by the
  Gumbel-top-k trick with the run's generator (:func:`sslzoo._ops.picking.sample_k`; Kirsch et al.
  2023). A :class:`BatchStrategy` chooses its queries jointly instead (:meth:`BatchStrategy.choose`:
  a diverse or jointly informative batch), with no per-id score, so it takes no ``sampling``.
* Labels come from the oracle (the default ``label`` hook), each with weight 1, and the loss is
  the cross-entropy on the labeled set (the default ``loss``).

Hybrid strategies compose these: subclass a strategy here and override ``label``/``weight``.

Reference for ``sampling``: Kirsch, A., Farquhar, S., Atighehchian, P., Jesson, A., Branchaud-Charron,
F. & Gal, Y. (2023). Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning.
Transactions on Machine Learning Research (TMLR). arXiv:2106.12059.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from sslzoo._contract.context import Context
from sslzoo._contract.labels import ORACLE
from sslzoo._contract.strategy import Strategy, TrainOptions
from sslzoo._ops.picking import sample_k, top_k
from sslzoo.errors import OptionError

DEFAULT_ROUNDS = 10
"""With no ``budget``, an active learner queries this many rounds of ``query_size`` ids."""

MC_SCORE_ELEMENTS = 16 * 2**20
"""Probabilities (ids × classes × passes) held at once while scoring MC-dropout passes (~64 MB)."""


@dataclass
class ActiveOptions(TrainOptions):
    """Options of every active-learning strategy (query size 10 as in Gal et al. 2017)."""

    query_size: int = field(default=10, metadata={
        "min": 1, "help": "pool ids queried per round (the last round queries fewer to meet the budget)"})
    budget: int | None = field(default=None, metadata={
        "min": 1, "help": "stop when this many oracle labels are held, the starting --labels included "
                          f"(none: the starting labels + {DEFAULT_ROUNDS} rounds of query_size)"})
    pool_subset: int = field(default=0, metadata={
        "min": 0, "help": "score a seeded random subset of this many pool ids per round "
                          "(0: the whole pool; Gal et al. 2017 used 2000)"})
    sampling: Literal["topk", "power", "softmax", "softrank"] = field(default="topk", metadata={
        "help": "how a scoring strategy turns scores into a batch: the top query_size, or drawn without "
                "replacement ∝ score^β (power), exp(β·score) (softmax) or rank^-β (softrank), β = sampling_beta "
                "(Kirsch et al. 2023); a strategy that chooses its batch jointly takes only topk"})
    sampling_beta: float = field(default=1.0, metadata={
        "min": 0.0, "help": "the sampling's β, an inverse temperature: 0 draws uniformly, a large β gives back "
                            "topk (unused with topk)"})


@dataclass
class MCDropoutOptions(ActiveOptions):
    """Options of the MC-dropout strategies: T = 20 stochastic passes, as in Gal et al. 2017."""

    passes: int = field(default=20, metadata={
        "min": 1, "max": 10_000, "help": "MC-dropout forward passes T (dropout layers stochastic, nothing else)"})


class ActiveStrategy(Strategy, ABC):
    """Base of the active learners: query the top ``query_size`` pool ids by :meth:`score`.

    Subclasses set ``name``, ``paper``, ``summary`` and define :meth:`score` (abstract), or, to
    choose a round's batch as a whole rather than id by id, override :meth:`choose` (as
    :class:`BatchStrategy` does) or :meth:`select` instead: then ``score`` need not be defined.
    """

    family = "al"
    Options: ClassVar[type] = ActiveOptions
    options: ActiveOptions

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        chooses = cls.select is not ActiveStrategy.select or cls.choose is not ActiveStrategy.choose
        if chooses and getattr(cls.score, "__isabstractmethod__", False):
            cls.score = _no_score  # type: ignore[method-assign]  # select/choose picks the batch: score is not abstract

    # -- budget ---------------------------------------------------------------------------
    @staticmethod
    def initial_labels(ctx: Context) -> int:
        """How many oracle labels the run started with (those given in round 0)."""
        return int(((ctx.ledger.source == ORACLE) & (ctx.ledger.round == 0)).sum())

    def budget(self, ctx: Context) -> int:
        """The oracle labels to reach: ``options.budget``, or by default the starting labels +
        ``DEFAULT_ROUNDS`` rounds of ``query_size``."""
        if self.options.budget is not None:
            return self.options.budget
        return self.initial_labels(ctx) + DEFAULT_ROUNDS * self.options.query_size

    def query_count(self, ctx: Context, n_candidates: int) -> int:
        """How many ids :meth:`select` returns now from ``n_candidates`` pool ids:
        ``min(query_size, budget - labeled, n_candidates)``, never negative."""
        return max(0, min(self.options.query_size, self.budget(ctx) - ctx.n_labeled, n_candidates))

    def check(self, ctx: Context) -> None:
        """The budget counts the starting labels, so it must be at least as many."""
        budget, start = self.budget(ctx), self.initial_labels(ctx)
        if budget < start:
            raise OptionError(f"option budget={budget} of strategy {self.name!r} is smaller than the "
                              f"{start} starting labels (--labels); the budget counts them, so it "
                              f"must be at least {start}")
        if self.options.sampling != "topk" and type(self).score is _no_score:
            raise OptionError(f"option sampling={self.options.sampling!r} of strategy {self.name!r} is not allowed: "
                              f"it chooses its batch jointly, with no per-id score to sample by; only "
                              f"sampling='topk' (the default)")

    def resolved_options(self) -> dict[str, Any]:
        """The options as the record reports them; ``sampling`` and ``sampling_beta`` only when sampling is
        not ``topk``, so that a top-k run's record reads as it did before they existed."""
        options = super().resolved_options()
        if self.options.sampling == "topk":
            options.pop("sampling", None)
            options.pop("sampling_beta", None)
        return options

    def stop(self, ctx: Context) -> str | None:
        """``"budget"`` once the labeled set holds the budget; the engine stops on an empty pool."""
        return "budget" if ctx.n_labeled >= self.budget(ctx) else None

    # -- select ---------------------------------------------------------------------------
    def candidates(self, ctx: Context, pool: Tensor, k: int) -> Tensor:
        """The pool ids to score: all of them, or a seeded random subset of ``pool_subset`` ids
        (never fewer than ``k``, so that a round always queries ``k`` ids)."""
        m = self.options.pool_subset
        if m <= 0 or m >= pool.numel():
            return pool
        m = max(m, k)
        perm = torch.randperm(pool.numel(), generator=ctx.generator, device=pool.device)
        return pool[perm[:m]]

    @abstractmethod
    def score(self, ctx: Context, ids: Tensor) -> Tensor:
        """One score per id of ``ids`` (1-D, on the device); higher = more worth querying."""

    def pick(self, ctx: Context, scores: Tensor, ids: Tensor, k: int) -> Tensor:
        """``k`` of ``ids`` given their ``scores``: the top k, ties broken at random, or drawn as the
        ``sampling`` option says (:func:`sslzoo._ops.picking.sample_k`)."""
        if self.options.sampling == "topk":
            return top_k(scores, ids, k, ctx.generator)
        return sample_k(scores, ids, k, self.options.sampling, self.options.sampling_beta, ctx.generator)

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        """``k`` of the candidate global ``ids``: :meth:`pick` by :meth:`score`."""
        return self.pick(ctx, self.score(ctx, ids), ids, k)

    def select(self, ctx: Context, pool: Tensor) -> Tensor:
        """:meth:`choose` ``query_count`` ids of the :meth:`candidates` drawn from the ``pool`` (global ids)."""
        k = self.query_count(ctx, pool.numel())
        if k == 0:
            return pool[:0]
        return self.choose(ctx, self.candidates(ctx, pool, k), k)


def _no_score(self: ActiveStrategy, ctx: Context, ids: Tensor) -> Tensor:
    """A strategy whose own ``select`` or ``choose`` chooses the batch scores no id."""
    raise NotImplementedError(f"strategy {self.name!r} chooses its batch in select or choose and defines no score")


class UncertaintyStrategy(ActiveStrategy):
    """Scores one deterministic forward pass (dropout off) with ``uncertainty(probs (N, C))``."""

    uncertainty: ClassVar[staticmethod[[Tensor], Tensor]]

    def score(self, ctx: Context, ids: Tensor) -> Tensor:
        return type(self).uncertainty(ctx.predict(ids))


class MCDropoutStrategy(ActiveStrategy):
    """Scores ``passes`` MC-dropout passes with ``uncertainty(probs (N, C, T))`` (Gal et al. 2017).

    Only the dropout layers are stochastic (never ``model.train()``); the passes run batched on
    the device, and the pool is scored in chunks of at most ``MC_SCORE_ELEMENTS`` probabilities.
    """

    Options: ClassVar[type] = MCDropoutOptions
    options: MCDropoutOptions
    uncertainty: ClassVar[staticmethod[[Tensor], Tensor]]

    def score(self, ctx: Context, ids: Tensor) -> Tensor:
        passes = self.options.passes
        chunk = max(1, MC_SCORE_ELEMENTS // (max(1, ctx.num_classes) * passes))
        fn = type(self).uncertainty
        out = [fn(ctx.predict_mc(ids[start:start + chunk], passes)) for start in range(0, ids.numel(), chunk)]
        return torch.cat(out) if out else torch.empty(0, device=ids.device)


class BatchStrategy(ActiveStrategy):
    """Base of the batch-aware active learners: the ``query_count`` queries of a round are chosen
    together from the candidates by :meth:`choose` (diverse in an embedding, or jointly
    informative), not as the top k of a per-id score. Subclasses override :meth:`choose`;
    :meth:`ActiveStrategy.select` calls it."""

    @abstractmethod
    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        """``k`` of the candidate global ``ids``, chosen together (1-D int64, unique, on the device)."""
