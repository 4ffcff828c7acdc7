"""The initial labeled set: which training samples start out labeled."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from sslzoo.errors import DataError, OptionError

SPLITS: tuple[str, ...] = ("balanced", "first", "random")
"""Allowed values of ``how`` in :func:`initial_labels`."""


def initial_labels(
    y: Tensor,
    n: int,
    seed: int,
    how: str = "balanced",
    exclude_classes: Sequence[int] = (),
) -> Tensor:
    """Return the sorted int64 ids (indices into ``y``) of the ``n`` initially labeled samples.

    ``how`` is one of :data:`SPLITS`: ``"balanced"`` takes ``n // C`` seeded-random samples of each
    of the ``C`` non-excluded classes and one more of each of the ``n % C`` lowest-numbered ones;
    ``"first"`` takes the first ``n`` samples in file order; ``"random"`` takes ``n`` seeded-random
    samples. Samples of ``exclude_classes`` are never chosen. Classes are ``0 .. int(y.max())``.
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
        per_class, remainder = divmod(n, len(kept))
        chosen = []
        for rank, c in enumerate(kept):
            want = per_class + (1 if rank < remainder else 0)
            members = (y == c).nonzero().flatten()
            if members.numel() < want:
                raise DataError(
                    f"class {c} has only {members.numel()} samples but the balanced split asks for "
                    f"{want} of it; lower --labels or use the 'random' or 'first' split"
                )
            chosen.append(members[torch.randperm(members.numel(), generator=g)[:want]])
        ids = torch.cat(chosen)
    return torch.sort(ids.to(torch.int64)).values
