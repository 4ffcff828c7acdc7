"""Committees and deep ensembles: ``qbc_vote_entropy``, ``qbc_consensus_entropy``, ``qbc_max_kl``,
``ensemble_bald``, ``ensemble_batchbald``.

Each round, before it selects, the strategy asks the engine for a committee of ``members`` (K,
default 5) models (``ctx.ensemble``): fresh copies of the run's model, each initialised from its own
seed (derived from the run's seed, the round and its index) and trained on the training set the
run's model trained on, all K in one batched pass where the model allows (see
:mod:`sslzoo._engine.ensemble`). The members' class probabilities of the candidates, (N, C, K),
are scored by how much the members disagree (query-by-committee, Seung et al. 1992), or take the
place of MC-dropout's passes as samples of the posterior (deep ensembles, Beluch et al. 2018):

* ``qbc_vote_entropy``: the entropy of the members' votes (Dagan & Engelson 1995);
* ``qbc_consensus_entropy``: the entropy of the members' mean prediction ("soft" vote entropy:
  Settles 2009, §3.2);
* ``qbc_max_kl``: the largest KL divergence of a member from the mean prediction (modAL's maximum
  disagreement);
* ``ensemble_bald``: BALD over the members, ``H[mean p] - mean H[p]``, which is also McCallum &
  Nigam (1998)'s mean KL divergence of the members from their mean (scikit-activeml's default
  ``KL_divergence`` query-by-committee), so that it is not a strategy twice;
* ``ensemble_batchbald``: BatchBALD's greedy joint mutual information (Kirsch et al. 2019) with the
  K members as the K consistent posterior samples (a member is one set of weights for every
  candidate, as a consistent MC-dropout pass is).

The run's own model (trained by the strategy's loss, evaluated on the test set) is not a member:
the committee only chooses the queries. The disagreement scores are in
:mod:`sslzoo._ops.disagreement`.

References: Seung, H. S., Opper, M. & Sompolinsky, H. (1992). Query by Committee. COLT 1992,
287–294. McCallum, A. & Nigam, K. (1998). Employing EM and Pool-Based Active Learning for Text
Classification. ICML 1998. Beluch, W. H., Genewein, T., Nürnberger, A. & Köhler, J. M. (2018). The
Power of Ensembles for Active Learning in Image Classification. CVPR 2018, 9368–9377.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from sslzoo import scores
from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._default_plugins.batchbald import KIRSCH_2019
from sslzoo._ops import disagreement
from sslzoo._ops.joint_entropy import batchbald
from sslzoo._strategies.active import MC_SCORE_ELEMENTS, ActiveOptions, ActiveStrategy, BatchStrategy
from sslzoo.errors import OptionError

SEUNG_1992 = ("Seung, H. S., Opper, M. & Sompolinsky, H. (1992). Query by Committee. Proceedings of the 5th "
              "Annual Workshop on Computational Learning Theory (COLT 1992), 287–294")
MCCALLUM_1998 = ("McCallum, A. & Nigam, K. (1998). Employing EM and Pool-Based Active Learning for Text "
                 "Classification. Proceedings of the 15th International Conference on Machine Learning (ICML 1998)")
BELUCH_2018 = ("Beluch, W. H., Genewein, T., Nürnberger, A. & Köhler, J. M. (2018). The Power of Ensembles for "
               "Active Learning in Image Classification. CVPR 2018, 9368–9377")


@dataclass
class CommitteeOptions(ActiveOptions):
    """Options of the committee strategies: K = 5 members (Beluch et al. 2018's ensembles of 5)."""

    members: int = field(default=5, metadata={
        "min": 2, "max": 100, "help": "committee members K trained each round: copies of the model, each "
                                      "initialised from its own seed, trained in one batched pass where the "
                                      "model allows"})


@dataclass
class EnsembleBatchBaldOptions(CommitteeOptions):
    """``ensemble_batchbald``'s options: K = 5 members and BatchBALD's 100,000 sampled label configurations."""

    joint_samples: int = field(default=100_000, metadata={
        "min": 1, "help": "label configurations of the batch: exact joint entropies up to this many (C^n), "
                          "sampled beyond; at least members (joint_samples // members per member)"})


class CommitteeStrategy(ActiveStrategy):
    """Scores the committee's probabilities (N, C, K) with ``disagreement`` (higher = more disagreement)."""

    Options: ClassVar[type] = CommitteeOptions
    options: CommitteeOptions
    disagreement: ClassVar[staticmethod[[Tensor], Tensor]]

    def score(self, ctx: Context, ids: Tensor) -> Tensor:
        committee = ctx.ensemble(self.options.members)
        chunk = max(1, MC_SCORE_ELEMENTS // (max(1, ctx.num_classes) * self.options.members))
        fn = type(self).disagreement
        out = [fn(committee.probabilities(ids[start:start + chunk])) for start in range(0, ids.numel(), chunk)]
        return torch.cat(out) if out else torch.empty(0, device=ids.device)


class QbcVoteEntropy(CommitteeStrategy):
    """Query the ids whose members' votes (each member's most probable class) have the highest entropy."""

    name = "qbc_vote_entropy"
    paper = (f"{SEUNG_1992}; Dagan, I. & Engelson, S. P. (1995). Committee-Based Sampling for Training "
             f"Probabilistic Classifiers. ICML 1995, 150–157")
    summary = "query-by-committee: query the highest entropy of the K members' votes"
    disagreement = staticmethod(disagreement.vote_entropy)


class QbcConsensusEntropy(CommitteeStrategy):
    """Query the ids whose members' mean prediction (the consensus) has the highest entropy."""

    name = "qbc_consensus_entropy"
    paper = (f"{SEUNG_1992}; Settles, B. (2009). Active Learning Literature Survey. Computer Sciences Technical "
             f"Report 1648, University of Wisconsin–Madison, §3.2")
    summary = "query-by-committee: query the highest entropy of the K members' mean prediction"
    disagreement = staticmethod(scores.mc_entropy)


class QbcMaxKl(CommitteeStrategy):
    """Query the ids on which some member's prediction is farthest (KL divergence) from the consensus."""

    name = "qbc_max_kl"
    paper = f"{SEUNG_1992}; {MCCALLUM_1998}"
    summary = "query-by-committee: query the largest KL divergence of a member from the members' mean"
    disagreement = staticmethod(disagreement.max_kl)


class EnsembleBald(CommitteeStrategy):
    """Query the ids with the highest BALD over the members (= their mean KL divergence from the mean)."""

    name = "ensemble_bald"
    paper = f"{BELUCH_2018}; {MCCALLUM_1998}"
    summary = "deep-ensemble BALD: query the highest H[mean p] - mean H[p] over K trained members"
    disagreement = staticmethod(scores.bald)


class EnsembleBatchBald(BatchStrategy):
    """Query the batch with the largest joint mutual information with the weights, the K members as samples."""

    name = "ensemble_batchbald"
    paper = f"{KIRSCH_2019}; {BELUCH_2018}"
    summary = "deep-ensemble BatchBALD: greedy joint mutual information of the batch over K trained members"
    Options: ClassVar[type] = EnsembleBatchBaldOptions
    options: EnsembleBatchBaldOptions

    def check(self, ctx: Context) -> None:
        super().check(ctx)
        if self.options.joint_samples < self.options.members:
            raise OptionError(f"option joint_samples={self.options.joint_samples} of strategy {self.name!r} is "
                              f"smaller than members={self.options.members}: each member draws joint_samples // "
                              f"members configurations, so it must be at least {self.options.members}")

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        probs = ctx.ensemble(self.options.members).probabilities(ids)
        positions, _ = batchbald(probs, k, self.options.joint_samples, ctx.generator)
        return ids[positions]


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    for cls in (QbcVoteEntropy, QbcConsensusEntropy, QbcMaxKl, EnsembleBald, EnsembleBatchBald):
        register(cls)
