"""The initial labeled set: which training samples start out labeled."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sslzoo.errors import DataError, OptionError

SPLITS: tuple[str, ...] = ("balanced", "first", "random", "first_balanced", "gal2017")
"""Allowed values of ``how`` in :func:`initial_labels` and :func:`held_out`."""


def initial_labels(
    y: Tensor,
    n: int,
    seed: int,
    how: str = "balanced",
    exclude_classes: Sequence[int] = (),
    classes: Sequence[str] = (),
) -> Tensor:
    """Return the sorted int64 ids (indices into ``y``) of the ``n`` initially labeled samples.

    ``how`` is one of :data:`SPLITS`: ``"balanced"`` takes ``n // C`` seeded-random samples of each
    of the ``C`` non-excluded classes and one more of each of the ``n % C`` lowest-numbered ones;
    ``"first_balanced"`` takes as many of each class, the first ones in file order; ``"first"``
    takes the first ``n`` samples in file order; ``"random"`` takes ``n`` seeded-random samples;
    ``"gal2017"`` is the split of Gal et al. (2017)'s official code: a seeded shuffle of the
    training set, the first sixth of it (10,000 of MNIST's 60,000) the candidates of the initial
    labels (as many of each class as ``"balanced"``, the first in shuffled order), the last two
    thirds (40,000) the unlabeled pool and the rest held out (:func:`held_out`). Samples of
    ``exclude_classes`` are never chosen. Classes are ``0 .. int(y.max())``.
    """
    if how not in SPLITS:
        raise OptionError(f"unknown split {how!r}; allowed: {', '.join(SPLITS)}")
    if isinstance(n, bool) or not isinstance(n, int):
        raise OptionError(f"--labels must be a whole number, got {n!r}")
    if n <= 0:
        raise OptionError(f"--labels must be a positive number, got {n}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise OptionError(f"the seed must be an integer, got {seed!r}")

    y = torch.as_tensor(y).detach().cpu()
    if y.ndim != 1 or y.numel() == 0:
        raise DataError(f"labels must be a non-empty 1-D tensor, got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise DataError(f"labels must be integer class ids, got dtype {y.dtype}")
    y = y.to(torch.int64)
    if int(y.min()) < 0:
        raise DataError(f"labels must be class ids >= 0, found {int(y.min())}")

    num_classes = int(y.max()) + 1
    excluded = set()
    for c in exclude_classes:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num_classes:
            raise OptionError(
                f"cannot exclude class {c!r}: it does not exist, the classes are 0..{num_classes - 1}"
            )
        excluded.add(c)
    kept = [c for c in range(num_classes) if c not in excluded]
    if not kept:
        raise OptionError(
            f"cannot exclude every class (0..{num_classes - 1}); at least one class must be labeled"
        )

    eligible = torch.ones_like(y, dtype=torch.bool)
    for c in excluded:
        eligible &= y != c
    eligible_ids = eligible.nonzero().flatten()
    if n > eligible_ids.numel():
        where = (
            f" outside the excluded classes {', '.join(map(str, sorted(excluded)))}" if excluded else ""
        )
        raise OptionError(
            f"--labels {n} is larger than the {eligible_ids.numel()} training samples{where}; "
            f"ask for at most {eligible_ids.numel()}"
        )

    g = torch.Generator().manual_seed(seed)
    if how == "first":
        ids = eligible_ids[:n]
    elif how == "random":
        ids = eligible_ids[torch.randperm(eligible_ids.numel(), generator=g)[:n]]
    else:
        # candidates in the order the first ones of each class are taken from
        order = {"balanced": None, "first_balanced": torch.arange(y.numel()),
                 "gal2017": _gal2017_order(y.numel(), seed)[:y.numel() // 6]}[how]
        per_class, remainder = divmod(n, len(kept))
        chosen = []
        for rank, c in enumerate(kept):
            want = per_class + (1 if rank < remainder else 0)
            members = (y == c).nonzero().flatten() if order is None else order[y[order] == c]
            if members.numel() < want:
                raise DataError(
                    f"class {c}{f' ({classes[c]!r})' if c < len(classes) else ''} has only {members.numel()} samples "
                    f"among the candidates of the {how} split "
                    f"but it asks for {want} of it; lower --labels or use the 'random' or 'first' split"
                )
            chosen.append(members[torch.randperm(members.numel(), generator=g)[:want]] if order is None
                          else members[:want])
        ids = torch.cat(chosen)
    return torch.sort(ids.to(torch.int64)).values


def _gal2017_order(n: int, seed: int) -> Tensor:
    """The seeded shuffle of ``n`` training ids that the ``gal2017`` split cuts into parts."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def held_out(n: int, seed: int, how: str, labeled: Tensor) -> Tensor:
    """The sorted ids of ``n`` training samples that are neither labeled nor in the unlabeled pool.

    Empty for every split but ``"gal2017"``, whose pool is the last two thirds of its shuffle:
    everything else that is not one of the ``labeled`` ids is held out (never queried, never
    pseudo-labeled, never trained on).
    """
    if how != "gal2017":
        return torch.empty(0, dtype=torch.int64)
    out = torch.ones(n, dtype=torch.bool)
    out[_gal2017_order(n, seed)[n // 3:]] = False
    out[labeled.cpu()] = False
    return out.nonzero().flatten()
