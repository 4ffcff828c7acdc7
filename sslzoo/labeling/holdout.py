"""Held-out items: what a session measures its trainings on when its data's test split has no labels.

``sslzoo label start --holdout N`` sets N of the labels the data holds aside, drawn at random with the
session's seed. Neither the strategy nor its control group trains on them or asks about them, and
every training's accuracy (with precision and recall by class) is measured on them instead of a
test split. They are labels the person gave already, so they cost nothing more; they measure the
model on items like the labeled ones, which is why a labeled test split, when the data has one, is
what a session measures on (and ``--holdout`` is refused there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sslzoo.errors import OptionError


def held_out_items(count: int | str, labeled: Sequence[int], seed: int, dataset: str,
                   test_labeled: bool) -> list[int]:
    """``count`` of the ``labeled`` items of ``dataset``, drawn at random with ``seed``, sorted; an
    OptionError when ``count`` is not a whole number from 1 to ``len(labeled)`` or the dataset's test
    split is labeled (``test_labeled``)."""
    try:
        n = int(str(count))
    except ValueError:
        n = 0
    if test_labeled:
        raise OptionError(f"--holdout: the test split of dataset {dataset!r} is labeled and measures every training; "
                          f"--holdout sets labels aside for data whose test split has none")
    if not labeled:
        raise OptionError(f"--holdout: dataset {dataset!r} holds no labels to set aside; give it a labeled test "
                          f"split instead (`sslzoo datasets` lists its options)")
    if isinstance(count, bool) or not 1 <= n <= len(labeled):
        raise OptionError(f"--holdout must be a whole number from 1 to {len(labeled)} (the labels dataset "
                          f"{dataset!r} holds), got {count!r}")
    picks = torch.randperm(len(labeled), generator=torch.Generator().manual_seed(seed))[:n]
    return sorted(labeled[i] for i in picks.tolist())


def evaluated_on(holdout: Mapping[str, Any] | None) -> str:
    """What a session's accuracies are measured on, in words: its held-out items or the test split."""
    return f"{len(holdout['ids'])} held-out items" if holdout else "the test split"
