"""Core-set active learning: ``kcenter``.

Each round the pool candidates and the labeled ids are embedded by the current model
(:meth:`sslzoo._contract.context.Context.embed`: the input of its last linear layer, the "activations of
the final fully-connected layer" the paper measures in) and k-center greedy picks the batch: the
candidate farthest (l2) from every labeled id and every id picked before it, ``query_size`` times.
This is the paper's greedy 2-approximation (Algorithm 1), not its robust mixed-integer refinement.
Distances are computed on the device in chunks: the nearest labeled id of each candidate, then
one row per pick; no candidates × candidates matrix.

Reference: Sener, O. & Savarese, S. (2018). Active Learning for Convolutional Neural Networks: A
Core-Set Approach. International Conference on Learning Representations (ICLR 2018).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._strategies.active import BatchStrategy
from sslzoo._strategies.diversity import kcenter_greedy

SENER_2018 = ("Sener, O. & Savarese, S. (2018). Active Learning for Convolutional Neural Networks: A Core-Set "
              "Approach. International Conference on Learning Representations (ICLR 2018), Algorithm 1")


class KCenter(BatchStrategy):
    """Query the candidates that k-center greedy picks in the model's embedding (farthest first)."""

    name = "kcenter"
    paper = SENER_2018
    summary = "core-set: k-center greedy on the model's penultimate features (farthest from the labeled set)"

    def choose(self, ctx: Context, ids: Tensor, k: int) -> Tensor:
        labeled = ctx.labeled_ids()
        features = ctx.embed(torch.cat([ids, labeled]))
        return ids[kcenter_greedy(features[:ids.numel()], features[ids.numel():], k, ctx.generator)]


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(KCenter)
