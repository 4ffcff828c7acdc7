"""Label-efficiency metrics of a learning curve (test accuracy against oracle labels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ACCURACY_TARGETS = (0.90, 0.95)


def labels_to_reach(curve: Sequence[dict[str, Any]], target: float) -> int | None:
    """The fewest oracle labels at which the curve's test accuracy reaches ``target`` (None: never)."""
    for entry in curve:
        if entry["test_accuracy"] >= target:
            return int(entry["labels"])
    return None


def budget_auc(curve: Sequence[dict[str, Any]]) -> float | None:
    """Area under test accuracy vs labels (trapezoids), divided by the label range: in [0, 1].

    None when the curve spans a single label count (no active learning happened).
    """
    points = sorted((e["labels"], e["test_accuracy"]) for e in curve)
    span = points[-1][0] - points[0][0]
    if span <= 0:
        return None
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:]))
    return round(area / span, 6)


def curve_metrics(curve: Sequence[dict[str, Any]], targets: Sequence[float] = ACCURACY_TARGETS) -> dict[str, Any]:
    """``labels_to_accuracy`` per target and ``budget_auc`` for a record."""
    return {"labels_to_accuracy": {f"{t:.2f}": labels_to_reach(curve, t) for t in targets},
            "budget_auc": budget_auc(curve)}
