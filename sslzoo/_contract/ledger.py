"""The ledger: which training ids are labeled, how, when and how surely.

Labeling moves ids between index sets; it never copies data. Every id records its source
(pool, oracle, pseudo, or held out of both the pool and training by the split), its label, the
round it got it, its confidence, loss weight and, for a pseudo-label, its difficulty bucket
(:mod:`sslzoo._ops.quality`).
"""

from __future__ import annotations

import torch

from sslzoo._contract.labels import HELD_OUT, ORACLE, POOL, PSEUDO, Labels
from sslzoo._ops.quality import difficulty_buckets


class Ledger:
    """Per-id provenance for ``n`` training samples, kept on ``device``."""

    def __init__(self, n: int, device: torch.device) -> None:
        self.source = torch.zeros(n, dtype=torch.int8, device=device)
        self.target = torch.full((n,), -1, dtype=torch.long, device=device)
        self.round = torch.full((n,), -1, dtype=torch.int32, device=device)
        self.confidence = torch.zeros(n, dtype=torch.float32, device=device)
        self.weight = torch.zeros(n, dtype=torch.float32, device=device)
        self.bucket = torch.full((n,), -1, dtype=torch.int8, device=device)

    def assign(self, labels: Labels, weights: torch.Tensor, round_: int) -> None:
        """Record ``labels`` (all for pool ids) as given in round ``round_``."""
        ids = labels.ids
        self.source[ids] = labels.source
        self.target[ids] = labels.targets
        self.round[ids] = round_
        self.confidence[ids] = labels.confidence.float()
        self.weight[ids] = weights.float()
        pseudo = labels.source == PSEUDO
        self.bucket[ids[pseudo]] = difficulty_buckets(labels.confidence[pseudo])

    def hold_out(self, ids: torch.Tensor) -> None:
        """Take ``ids`` out of the pool for good: never queried, pseudo-labeled or trained on."""
        self.source[ids] = HELD_OUT

    def ids(self, source: int) -> torch.Tensor:
        """Sorted global ids whose source is ``source``."""
        return torch.nonzero(self.source == source).flatten()

    def pool(self) -> torch.Tensor:
        return self.ids(POOL)

    def oracle(self) -> torch.Tensor:
        return self.ids(ORACLE)

    def pseudo(self) -> torch.Tensor:
        return self.ids(PSEUDO)

    def train(self) -> torch.Tensor:
        """Every id the model trains on: oracle and pseudo labeled."""
        return torch.nonzero((self.source == ORACLE) | (self.source == PSEUDO)).flatten()
