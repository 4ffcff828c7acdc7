"""Results per class: precision and recall tables and confusion matrices of result records.

The labeling-workflow guide's readers judge a round by its per-class precision and recall: every
record carries its ``confusion`` counts of test samples by true and predicted class at the end of
its run, from which they are computed (:meth:`sslzoo._results.record.Record.per_class`), and each
round's end carries its confusion counts. Records from before sslzoo measured them have neither,
and are left out of these tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sslzoo._reports.comparison import ClassStats, class_stats

ANNOTATED_CLASSES = 12
"""Confusion matrices up to this many classes show their counts in the cells."""
PANELS_PER_ROW = 4


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def class_table(groups: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[list[str], list[list[str]]] | None:
    """A table of each class's precision and recall per strategy (mean over seeds), a row per class;
    None when no strategy's records carry them or their classes differ."""
    stats = {name: s for name, records in groups.items() if (s := class_stats(records)) is not None}
    if not stats or len({tuple(s.classes) for s in stats.values()}) != 1:
        return None
    classes = next(iter(stats.values())).classes
    header = ["class", *(f"{name} {metric}" for name in stats for metric in ("precision", "recall"))]
    rows = [[c, *(_percent(getattr(s, metric)[i]) for s in stats.values() for metric in ("precision", "recall"))]
            for i, c in enumerate(classes)]
    return header, rows


def better_classes(strategy: ClassStats, control: ClassStats) -> dict[str, tuple[int, int]]:
    """Per metric, (classes where ``strategy`` is higher than ``control``, classes compared)."""
    out = {}
    for metric in ("precision", "recall"):
        changes = [c for c in strategy.changes(control, metric) if c is not None]
        out[metric] = (sum(1 for c in changes if c > 0), len(changes))
    return out


def summed_confusion(records: Sequence[Mapping[str, Any]]) -> list[list[int]] | None:
    """The records' final confusion counts summed over seeds (None when one has none)."""
    matrices: list[list[list[int]]] = []
    for record in records:
        matrix = record.get("confusion")
        if not isinstance(matrix, list) or not matrix:
            return None
        matrices.append(matrix)
    size = len(matrices[0]) if matrices else 0
    if not size or any(len(m) != size or any(len(row) != size for row in m) for m in matrices):
        return None
    return [[sum(int(m[i][j]) for m in matrices) for j in range(size)] for i in range(size)]


def draw_confusions(figure: Callable[[float, float], Any], groups: Mapping[str, Sequence[Mapping[str, Any]]],
                    classes: Sequence[str]) -> Any:
    """A figure (made by ``figure(width, height)``) with one panel per strategy, up to four in a row:
    its confusion counts over seeds, each row (true class) coloured by the share of the class
    predicted as each column; None when no strategy has counts."""
    panels = [(name, m) for name, records in groups.items() if (m := summed_confusion(records)) is not None]
    panels = [(name, m) for name, m in panels if len(m) == len(classes)]
    if not panels:
        return None
    cols = min(PANELS_PER_ROW, len(panels))
    rows = math.ceil(len(panels) / cols)
    side = 3.2 + 0.15 * len(classes)
    fig = figure(side * cols, (side + 0.6) * rows)
    axes = fig.subplots(rows, cols, squeeze=False).flat
    for ax in list(axes)[len(panels):]:
        ax.set_visible(False)
    for ax, (name, matrix) in zip(fig.axes, panels):
        shares = [[v / max(1, sum(row)) for v in row] for row in matrix]
        ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        if len(classes) <= ANNOTATED_CLASSES:
            for i, row in enumerate(matrix):
                for j, count in enumerate(row):
                    ax.text(j, i, str(count), ha="center", va="center", fontsize="x-small",
                            color="white" if shares[i][j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize="x-small")
        ax.set_yticks(range(len(classes)), classes, fontsize="x-small")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name, fontsize="medium")
    return fig
