"""Pseudo-label quality: difficulty buckets and accuracy per bucket.

Each pseudo-label keeps its confidence and a difficulty bucket: the terciles of confidence
among the pseudo-labels given together (one round's acceptances, or one step's unlabeled
batch): ``easy`` is the most confident third, ``hard`` the least. Accuracy against the hidden
ground truth is computed by the run's judge for reports only; strategies never see it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

BUCKETS = ("easy", "medium", "hard")

Report = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None]
"""Where a tally's pseudo-labels go to be judged: ``(key, buckets, ids, targets)``."""


def difficulty_buckets(confidence: torch.Tensor) -> torch.Tensor:
    """0 (easy), 1 (medium) or 2 (hard) per element: terciles of ``confidence``, most confident first."""
    n = confidence.numel()
    rank = torch.empty(n, dtype=torch.long, device=confidence.device)
    rank[torch.argsort(confidence, descending=True, stable=True)] = torch.arange(n, device=confidence.device)
    return (rank * len(BUCKETS) // max(1, n)).to(torch.int8)


def pseudo_summary(given: list[int], correct: list[int], ids: int) -> dict[str, Any]:
    """``{"count", "ids", "accuracy", "buckets": {name: {"count", "accuracy"}}}``, plain numbers, from
    the pseudo-labels ``given`` and ``correct`` per bucket: ``count`` pseudo-labels given (draws),
    ``ids`` distinct pseudo-labeled ids."""
    total = sum(given)

    def acc(right: int, n: int) -> float | None:
        return round(right / n, 6) if n else None

    return {"count": total, "ids": ids, "accuracy": acc(sum(correct), total),
            "buckets": {name: {"count": g, "accuracy": acc(c, g)} for name, g, c in zip(BUCKETS, given, correct)}}


class Tally:
    """Pseudo-labels given per bucket, and which ids got one, accumulated on the device (no host
    sync), on the learner's side: whether each is right is for the run's judge to count
    (:meth:`sslzoo._engine.judge.Referee.pseudo`), under the tally's ``key``.

    ``given`` counts draws: a pool id pseudo-labeled at 100 steps counts 100 times. ``ids`` counts
    distinct pseudo-labeled ids (a boolean mask over the ``n_ids`` training ids).
    """

    def __init__(self, device: torch.device, n_ids: int, report: Report, key: int) -> None:
        self.given = torch.zeros(len(BUCKETS), dtype=torch.long, device=device)
        self.seen = torch.zeros(n_ids, dtype=torch.bool, device=device)
        self.report, self.key = report, key

    def add(self, buckets: torch.Tensor, ids: torch.Tensor, targets: torch.Tensor) -> None:
        """Count pseudo-labels ``targets`` of ``ids`` with their buckets; the judge learns of them."""
        self.given += torch.bincount(buckets.long(), minlength=len(BUCKETS))
        self.report(self.key, buckets, ids, targets)

    def mark(self, ids: torch.Tensor) -> None:
        """Note the global ``ids`` that got a pseudo-label (each counts once, however often)."""
        self.seen[ids] = True

    def counts(self) -> dict[str, Any]:
        """``{"key", "given" (per bucket), "ids" (distinct)}``, plain numbers, for the judge."""
        return {"key": self.key, "given": self.given.tolist(), "ids": int(self.seen.sum())}
