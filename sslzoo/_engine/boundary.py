"""The decision boundary of a run on a 2-D dataset: the plot data ``sslzoo report`` draws.

A record of a run on 2-D inputs carries a ``boundary`` entry: the final model's class on a grid
over the training data, and the training points that were labeled at the start, queried from the
oracle, pseudo-labeled, or left in the pool.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sslzoo._contract.ledger import Ledger
from sslzoo._ops import inference
from sslzoo._ops.inference import Precision

GRID = 60  # grid points per axis
POOL_POINTS = 400  # unlabeled points kept (evenly spaced ids) to show the data and the pseudo-labels


def decision_boundary(model: nn.Module, x: torch.Tensor, ledger: Ledger, num_classes: int,
                      precision: Precision = "auto") -> dict[str, Any] | None:
    """For 2-D inputs ``x`` only: ``model``'s class on a grid over the training data, and the
    training points that were labeled at the start, queried from the oracle, pseudo-labeled, or
    left in the pool (a subsample, with the model's class, i.e. the pseudo-label it would get).

    Coordinates are the model's inputs (after the dataset's ``normalize``), rounded to 3 decimals;
    ``classes`` holds one string of digits per grid row (bottom row first) when there are at most
    10 classes, else lists of ints. The judge adds to the pseudo-labeled and pool points whether
    each label is right (``correct``: :meth:`sslzoo._engine.judge.Judge.finish`).
    """
    if x.dim() != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        return None
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    pad = 0.1 * (hi - lo) + 1e-3
    lo, hi = lo - pad, hi + pad
    n = GRID
    gy, gx = torch.meshgrid(torch.linspace(float(lo[1]), float(hi[1]), n, device=x.device),
                            torch.linspace(float(lo[0]), float(hi[0]), n, device=x.device), indexing="ij")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    classes = inference.probabilities(model, grid, torch.arange(n * n, device=x.device),
                                      precision=precision).argmax(dim=1)
    rows = classes.view(n, n).tolist()

    def points(ids: torch.Tensor, **extra: torch.Tensor) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"ids": ids.tolist(),
                                     "xy": [[round(a, 3), round(b, 3)] for a, b in x[ids].tolist()]}
        out.update({key: value.tolist() for key, value in extra.items()})
        return out

    oracle = ledger.oracle()
    first = ledger.round[oracle] <= 0
    pseudo = ledger.pseudo()
    pool = ledger.pool()
    pool = pool[torch.linspace(0, pool.numel() - 1, min(pool.numel(), POOL_POINTS),
                               device=x.device).long()] if pool.numel() else pool
    pool_pred = (inference.probabilities(model, x, pool, precision=precision).argmax(dim=1) if pool.numel()
                 else pool.new_zeros(0))
    return {
        "grid": {"x": [round(float(lo[0]), 4), round(float(hi[0]), 4)],
                 "y": [round(float(lo[1]), 4), round(float(hi[1]), 4)], "size": n,
                 "classes": ["".join(map(str, r)) for r in rows] if num_classes <= 10 else rows},
        "labeled": points(oracle[first], label=ledger.target[oracle[first]]),
        "queried": points(oracle[~first], label=ledger.target[oracle[~first]], round=ledger.round[oracle[~first]]),
        "pseudo": points(pseudo, label=ledger.target[pseudo]),
        "pool": points(pool, pred=pool_pred),
    }
