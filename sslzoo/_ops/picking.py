"""Pickers: turn per-id scores into the global ids to query.

Scoring (:mod:`sslzoo.scores`) is separate from picking: a score function maps predictions to
one number per id, a picker turns those numbers into ids. Pickers take and return **global
dataset ids**, never positions inside a subsample.
"""

from __future__ import annotations

import torch
from torch import Tensor


def top_k(scores: Tensor, ids: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """The ``k`` ids with the highest scores, best first; ties are broken at random.

    ``scores`` and ``ids`` are 1-D and aligned (``scores[i]`` is the score of ``ids[i]``). Ties
    are broken by a seeded random permutation drawn from ``generator`` (which must live on the
    scores' device): the candidates are shuffled, then stably sorted by score, so equal scores
    keep a random order. NaN scores count as the lowest. ``k`` is clamped to ``[0, len(ids)]``.
    Returns a 1-D int64 tensor of unique global ids (when ``ids`` is unique) on ``ids``' device.
    """
    if scores.dim() != 1 or ids.dim() != 1 or scores.numel() != ids.numel():
        raise ValueError(f"top_k needs 1-D scores and ids of the same length, got shapes "
                         f"{tuple(scores.shape)} and {tuple(ids.shape)}")
    n = ids.numel()
    k = max(0, min(int(k), n))
    if k == 0:
        return ids[:0].long()
    perm = torch.randperm(n, generator=generator, device=scores.device)
    shuffled = scores[perm]  # compared in their own dtype: float64 scores keep their precision
    if shuffled.is_floating_point():
        shuffled = torch.nan_to_num(shuffled, nan=float("-inf"))
    order = torch.sort(shuffled, descending=True, stable=True).indices[:k]
    return ids[perm[order].to(ids.device)].long()


SAMPLINGS = ("topk", "power", "softmax", "softrank")
"""How a scoring strategy turns scores into a batch: the top k, or one of the stochastic batch
acquisitions of Kirsch et al. (2023): ``power`` draws ∝ ``score ** beta``, ``softmax`` ∝
``exp(beta * score)``, ``softrank`` ∝ ``rank ** -beta`` (rank 1 = the highest score)."""


def log_weights(scores: Tensor, how: str, beta: float) -> Tensor:
    """The log of the (unnormalised) probability with which ``how`` draws each score, in float64.

    ``power``: ``beta * log(score)``, the score floored at the smallest positive float64 (a zero or
    negative score is drawn only when little else is left, as baal's ``PowerSampling`` clips the
    distribution at 0); ``softmax``: ``beta * score``; ``softrank``: ``-beta * log(rank)``, where tied
    scores share their average rank (as ``scipy.stats.rankdata`` ranks them, which baal uses). NaN
    scores get the lowest finite weight.
    """
    s = scores.detach().double()
    lowest = torch.finfo(torch.float64).min
    if how == "power":
        logw = beta * torch.log(torch.nan_to_num(s, nan=0.0).clamp_min(torch.finfo(torch.float64).tiny))
    elif how == "softmax":
        logw = beta * s
    elif how == "softrank":
        logw = -beta * torch.log(average_ranks(torch.nan_to_num(s, nan=float("-inf"))))
    else:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS[1:])}, got {how!r}")
    return torch.nan_to_num(logw, nan=lowest, neginf=lowest)


def average_ranks(scores: Tensor) -> Tensor:
    """1-based ranks by decreasing score (float64), ties given the mean of the ranks they span."""
    order = torch.sort(scores, descending=True, stable=True)
    _, inverse, counts = torch.unique_consecutive(order.values, return_inverse=True, return_counts=True)
    first = torch.cumsum(counts, 0) - counts  # 0-based position where each run of ties starts
    mean = first.double() + (counts.double() + 1.0) / 2.0
    ranks = torch.empty_like(mean[inverse])
    ranks[order.indices] = mean[inverse]
    return ranks


def gumbel(n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """``n`` standard Gumbel draws (float64) from ``generator``: ``-log(-log(u))``, ``u`` uniform on (0, 1)."""
    tiny = torch.finfo(torch.float64).tiny
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float64).clamp(tiny, 1.0 - 2**-53)
    return -torch.log(-torch.log(u))


def sample_k(scores: Tensor, ids: Tensor, k: int, how: str, beta: float,
             generator: torch.Generator | None = None) -> Tensor:
    """``k`` of ``ids`` drawn without replacement with probability ∝ ``exp(log_weights(scores, how, beta))``.

    The Gumbel-top-k trick (Kool et al. 2019; Kirsch et al. 2023): the ``k`` largest of
    ``log_weights + gumbel`` are a draw of ``k`` ids without replacement, one after the other, each
    ∝ its weight among those left. The noise comes from ``generator`` (on the scores' device), so a
    batch is random yet reproducible. ``beta = 0`` draws uniformly; a large ``beta`` gives back the
    top k. Same arguments and return as :func:`top_k`.
    """
    if scores.dim() != 1 or ids.dim() != 1 or scores.numel() != ids.numel():
        raise ValueError(f"sample_k needs 1-D scores and ids of the same length, got shapes "
                         f"{tuple(scores.shape)} and {tuple(ids.shape)}")
    n = ids.numel()
    k = max(0, min(int(k), n))
    if k == 0:
        return ids[:0].long()
    keys = log_weights(scores, how, beta) + gumbel(n, generator, scores.device)
    return ids[keys.topk(k).indices.to(ids.device)].long()
