"""Label-efficiency metrics of a learning curve (test accuracy against oracle labels).

A curve's points are its ends of rounds, one per label count: where several rounds end at the
same oracle labels (pseudo-labeling rounds after the budget, as in ``A>B``), the last of them,
the model a user holds with that many labels. Both metrics read the same points:

* labels to reach X: the first label count whose point reaches accuracy X. It is always a label
  count the run reached, never an interpolation between two of them.
* budget AUC: the trapezoid area under the points, divided by the label range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

ACCURACY_TARGETS = (0.90, 0.95)


def finite_number(value: Any) -> float | None:
    """``value`` as a float if it is a finite number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def budget_points(curve: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(oracle labels, test accuracy) at the end of each round, one point per label count (the
    last entry at that count), sorted by labels. Mid-round entries (``epoch`` < ``epochs``, from
    ``eval_every``) and entries without finite numbers are not points."""
    points: dict[float, float] = {}
    for entry in curve:
        if not isinstance(entry, Mapping) or entry.get("epoch") not in (None, entry.get("epochs")):
            continue
        labels, accuracy = finite_number(entry.get("labels")), finite_number(entry.get("test_accuracy"))
        if labels is not None and accuracy is not None:
            points[labels] = accuracy
    return sorted(points.items())


def labels_to_reach(curve: Sequence[Mapping[str, Any]], target: float) -> int | None:
    """The first label count whose point (see :func:`budget_points`) has test accuracy >= ``target``
    (None: never reached)."""
    return next((int(labels) for labels, accuracy in budget_points(curve) if accuracy >= target), None)


def budget_auc(curve: Sequence[Mapping[str, Any]]) -> float | None:
    """Area under test accuracy vs labels (trapezoids over :func:`budget_points`), divided by the
    label range: in [0, 1]. None when the curve spans a single label count (no active learning)."""
    points = budget_points(curve)
    if len(points) < 2:
        return None
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in zip(points, points[1:]))
    return round(area / (points[-1][0] - points[0][0]), 6)


def curve_metrics(curve: Sequence[Mapping[str, Any]], targets: Sequence[float] = ACCURACY_TARGETS) -> dict[str, Any]:
    """``labels_to_accuracy`` per target and ``budget_auc`` for a record."""
    return {"labels_to_accuracy": {f"{t:.2f}": labels_to_reach(curve, t) for t in targets},
            "budget_auc": budget_auc(curve)}


# -- per class ---------------------------------------------------------------------------------------
def class_metrics(confusion: Sequence[Sequence[int]]) -> dict[str, list[Any]]:
    """Per class, from a confusion matrix (rows: the true class, columns: the predicted one):
    ``precision`` (of the samples predicted as the class, the share that are; None when the model
    predicts it for none), ``recall`` (of the class's samples, the share predicted as it; None when
    the test split has none) and ``support`` (the class's test samples)."""
    size = len(confusion)
    support = [int(sum(row)) for row in confusion]
    predicted = [int(sum(row[c] for row in confusion)) for c in range(size)]
    hits = [int(confusion[c][c]) for c in range(size)]
    return {"precision": [round(hits[c] / predicted[c], 6) if predicted[c] else None for c in range(size)],
            "recall": [round(hits[c] / support[c], 6) if support[c] else None for c in range(size)],
            "support": support}


# -- against a control group -------------------------------------------------------------------------
def efficiency_boost(points: Sequence[tuple[float, float]],
                     control: Sequence[tuple[float, float]]) -> dict[str, float | None]:
    """How many times fewer labels a strategy needs than its control group (the same protocol with
    random queries) to reach the accuracy the control group ends with: ``control_labels`` (the
    control's last label count) divided by ``labels`` (the first label count at which the
    strategy's curve reaches ``control_accuracy``, a count it ran, never interpolated). Both curves
    are (labels, accuracy) points sorted by labels (:func:`budget_points`); the control's last point
    is its end. ``boost`` is None when the strategy never reaches the control's accuracy (``labels``
    is then None too); ``at_least`` says the strategy was there at its first point already (its
    starting labels), so it might have needed fewer."""
    if not points or not control:
        return {"control_accuracy": None, "control_labels": None, "labels": None, "boost": None, "at_least": False}
    control_labels, control_accuracy = control[-1]
    at = next((i for i, (_, y) in enumerate(points) if y >= control_accuracy), None)
    labels = points[at][0] if at is not None else None
    return {"control_accuracy": control_accuracy, "control_labels": control_labels, "labels": labels,
            "boost": round(control_labels / labels, 6) if labels else None, "at_least": at == 0}
