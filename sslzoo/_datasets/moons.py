"""Two interleaving half-circles ("two moons"), generated with torch; no scikit-learn needed."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sslzoo.errors import OptionError


def make_moons(n: int, noise: float, seed: int) -> tuple[Tensor, Tensor]:
    """Return ``(x float32 (n, 2), y int64 (n,))``, shuffled, deterministic per ``seed``.

    Same construction as scikit-learn's ``make_moons``: class 0 (``n // 2`` points) on the outer
    arc ``(cos t, sin t)``, class 1 (``n - n // 2`` points) on the inner arc
    ``(1 - cos t, 1 - sin t - 0.5)``, ``t`` evenly spaced over ``[0, pi]``; then gaussian noise
    with standard deviation ``noise`` is added to every coordinate.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise OptionError(f"two-moons needs n >= 2 samples (one per class), got {n!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise OptionError(f"two-moons noise must be a finite number >= 0, got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise OptionError(f"two-moons seed must be an integer, got {seed!r}")

    n_out, n_in = n // 2, n - n // 2
    t_out = torch.linspace(0.0, math.pi, n_out, dtype=torch.float64)
    t_in = torch.linspace(0.0, math.pi, n_in, dtype=torch.float64)
    outer = torch.stack([torch.cos(t_out), torch.sin(t_out)], dim=1)
    inner = torch.stack([1.0 - torch.cos(t_in), 1.0 - torch.sin(t_in) - 0.5], dim=1)
    x = torch.cat([outer, inner])
    y = torch.cat([torch.zeros(n_out, dtype=torch.int64), torch.ones(n_in, dtype=torch.int64)])

    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    x, y = x[perm], y[perm]
    if noise > 0:
        x = x + float(noise) * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return x.to(torch.float32), y
