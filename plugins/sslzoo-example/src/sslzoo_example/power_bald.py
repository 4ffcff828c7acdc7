"""PowerBALD: stochastic batch acquisition with MC-dropout BALD scores.

Top-k acquisition takes the k highest-scoring pool ids at once. Neighbouring ids score alike,
so a top-k batch is often redundant: many near-copies of the same hard example. Kirsch et al.
(2023) sample the batch instead: k ids without replacement, with probability proportional to
``score ** beta``. High scores are still preferred, but a batch is spread over the pool. It is
as cheap as top-k and often matches much costlier batch-aware methods such as BatchBALD.

Sampling uses the Gumbel-top-k trick: add Gumbel noise to ``beta * log(score)`` and take the
k largest keys. The noise is drawn from the run's generator (``ctx.generator``), so a run is
stochastic yet reproducible under its seed. ``beta = 0`` samples uniformly (random
acquisition); a very large ``beta`` gives back top-k (BALD).

Reference: Kirsch, A., Farquhar, S., Atighehchian, P., Jesson, A., Branchaud-Charron, F. &
Gal, Y. (2023). Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning.
Transactions on Machine Learning Research (TMLR). arXiv:2106.12059.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from sslzoo import Context, MCDropoutOptions, MCDropoutStrategy, scores

KIRSCH_2023 = ("Kirsch, A., Farquhar, S., Atighehchian, P., Jesson, A., Branchaud-Charron, F. & Gal, Y. "
               "(2023). Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning. "
               "Transactions on Machine Learning Research (TMLR). arXiv:2106.12059")


def power_sample(scores: Tensor, ids: Tensor, k: int, beta: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
    """``k`` of ``ids`` sampled without replacement with probability proportional to ``scores ** beta``.

    ``scores`` and ``ids`` are 1-D and aligned; ``generator`` must live on the scores' device.
    Zero or NaN scores get a tiny weight: they are drawn only when little else is left.
    Returns unique global ids (when ``ids`` is unique), 1-D int64, on ``ids``' device.
    """
    if scores.dim() != 1 or ids.dim() != 1 or scores.numel() != ids.numel():
        raise ValueError(f"power_sample needs 1-D scores and ids of the same length, got shapes "
                         f"{tuple(scores.shape)} and {tuple(ids.shape)}")
    k = max(0, min(int(k), ids.numel()))
    if k == 0:
        return ids[:0].long()
    tiny = torch.finfo(torch.float32).tiny
    weights = torch.nan_to_num(scores.float(), nan=0.0).clamp_min(tiny)
    uniform = torch.rand(scores.numel(), generator=generator, device=scores.device).clamp_min(tiny)
    gumbel = -torch.log(-torch.log(uniform))
    keys = beta * torch.log(weights) + gumbel
    return ids[keys.topk(k).indices.to(ids.device)].long()


@dataclass
class PowerBaldOptions(MCDropoutOptions):
    """MC-dropout options (passes, query_size, budget, ...) plus the sampling exponent."""

    beta: float = field(default=1.0, metadata={
        "min": 0.0, "help": "sample with probability ∝ BALD^beta (0: uniform; large: top-k BALD)"})


class PowerBald(MCDropoutStrategy):
    """Score the pool with MC-dropout BALD, then sample the batch ∝ score^beta instead of top-k."""

    name = "power_bald"
    paper = KIRSCH_2023
    summary = "stochastic batch BALD: sample the query batch with probability ∝ BALD^beta, not top-k"
    Options: ClassVar[type] = PowerBaldOptions
    options: PowerBaldOptions
    uncertainty = staticmethod(scores.bald)

    def pick(self, ctx: Context, scores: Tensor, ids: Tensor, k: int) -> Tensor:
        """``k`` of the scored pool ids, sampled ∝ BALD^beta instead of the top k (global ids)."""
        return power_sample(scores, ids, k, self.options.beta, ctx.generator)
