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
