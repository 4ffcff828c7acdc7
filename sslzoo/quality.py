"""Pseudo-label quality: difficulty buckets and accuracy per bucket.

Each pseudo-label keeps its confidence and a difficulty bucket: the terciles of confidence
among the pseudo-labels given together (one round's acceptances, or one step's unlabeled
batch): ``easy`` is the most confident third, ``hard`` the least. Accuracy against the hidden
ground truth is computed for reports only; strategies never see it.
"""

from __future__ import annotations

from typing import Any

import torch

BUCKETS = ("easy", "medium", "hard")


def difficulty_buckets(confidence: torch.Tensor) -> torch.Tensor:
    """0 (easy), 1 (medium) or 2 (hard) per element: terciles of ``confidence``, most confident first."""
    n = confidence.numel()
    rank = torch.empty(n, dtype=torch.long, device=confidence.device)
    rank[torch.argsort(confidence, descending=True, stable=True)] = torch.arange(n, device=confidence.device)
    return (rank * len(BUCKETS) // max(1, n)).to(torch.int8)


class Tally:
    """Pseudo-labels given and correct, per bucket, and which ids got one, accumulated on the device
    (no host sync).

    ``given`` counts draws: a pool id pseudo-labeled at 100 steps counts 100 times. ``ids`` counts
    distinct pseudo-labeled ids (a boolean mask over the ``n_ids`` training ids).
    """

    def __init__(self, device: torch.device, n_ids: int) -> None:
        self.given = torch.zeros(len(BUCKETS), dtype=torch.long, device=device)
        self.correct = torch.zeros(len(BUCKETS), dtype=torch.long, device=device)
        self.seen = torch.zeros(n_ids, dtype=torch.bool, device=device)

    def add(self, buckets: torch.Tensor, correct: torch.Tensor) -> None:
        """Count pseudo-labels with their buckets and whether each is right."""
        index = buckets.long()
        self.given += torch.bincount(index, minlength=len(BUCKETS))
        self.correct += torch.bincount(index, weights=correct.double(), minlength=len(BUCKETS)).long()

    def mark(self, ids: torch.Tensor) -> None:
        """Note the global ``ids`` that got a pseudo-label (each counts once, however often)."""
        self.seen[ids] = True

    def summary(self) -> dict[str, Any]:
        """``{"count", "ids", "accuracy", "buckets": {name: {"count", "accuracy"}}}``, plain numbers:
        ``count`` pseudo-labels given (draws), ``ids`` distinct pseudo-labeled ids."""
        given, correct = self.given.tolist(), self.correct.tolist()
        total = sum(given)

        def acc(right: int, n: int) -> float | None:
            return round(right / n, 6) if n else None

        return {"count": total, "ids": int(self.seen.sum()), "accuracy": acc(sum(correct), total),
                "buckets": {name: {"count": g, "accuracy": acc(c, g)}
                            for name, g, c in zip(BUCKETS, given, correct)}}
