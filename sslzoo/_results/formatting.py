"""What every table sslzoo prints or writes shares: records grouped by keys, mean ± std over seeds,
and tables as plain text (the terminal) or markdown (reports, the results page, PR comments)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def group_by(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    """``items`` grouped by ``key(item)``; groups, and items within a group, in first-seen order."""
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def by_keys(*keys: str) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A :func:`group_by` key: a record's values of ``keys`` (None where one is missing)."""
    return lambda record: tuple(record.get(k) for k in keys)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (0 for a single value) of ``values``."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def plus_minus(mean: float, std: float, digits: int = 2, count: int = 2) -> str:
    """``mean ± std`` with ``digits`` decimals; the mean alone when it is of ``count`` = 1 value
    (a single seed has no spread to show)."""
    if count == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def percent(values: Sequence[float]) -> str:
    """Accuracies (fractions) over seeds as ``mean ± std %`` in points: ``95.96 ± 0.12 %`` (``95.96 %`` for one)."""
    mean, std = mean_std(values)
    return plus_minus(100 * mean, 100 * std, count=len(values)) + " %"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], rule: bool = True) -> list[str]:
    """A plain-text table: each column as wide as its widest cell, two spaces apart, no trailing
    spaces; ``rule``: a line of dashes under the header."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [line(header), *(["  ".join("-" * w for w in widths)] if rule else []), *map(line, rows)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> list[str]:
    """A markdown table: the first ``left`` columns left-aligned, the others right-aligned (numbers);
    a ``|`` inside a cell is escaped."""
    return ["| " + " | ".join(header) + " |",
            "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|",
            *("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows)]
