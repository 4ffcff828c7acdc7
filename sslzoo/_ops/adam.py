"""Adam and AdamW with ε̂: the form of the update that TensorFlow's and Keras' Adam compute.

Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization" (ICLR 2015), give two forms of
the step. Algorithm 1 (PyTorch's ``Adam``) adds ε to the bias-corrected second moment,
``θ -= α · m̂ / (√v̂ + ε)``. The paragraph before their §2.1 folds the bias corrections into the
step size, ``α_t = α · √(1 − β₂ᵗ) / (1 − β₁ᵗ)`` and ``θ -= α_t · m / (√v + ε̂)``, and adds ε̂ to
the *uncorrected* √v: the same step only where ``√v ≫ ε̂``. Where a gradient is near zero the
two differ most on the first steps: at step 1, ε̂ acts like ``ε / √(1 − β₂)`` (31.6 ε for
β₂ = 0.999), so a gradient of rounding size (~1e-9) moves a weight by ~3e-3·α instead of ~0.1·α.

The classes here reuse PyTorch's kernels: with ``eps = ε̂ / √(1 − β₂ᵗ)`` at step t, Algorithm 1's
update equals the ε̂ form exactly (up to rounding). The step count is the parameter group's.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class EpsilonHat:
    """Mixin for ``torch.optim.Adam``/``AdamW``: the group's ``eps`` is ε̂ (see the module)."""

    param_groups: list[dict[str, Any]]

    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            group.setdefault("eps_hat", group["eps"])
            group["eps_hat_step"] = t = group.get("eps_hat_step", 0) + 1
            group["eps"] = group["eps_hat"] / math.sqrt(1.0 - group["betas"][1] ** t)
        return super().step(closure)  # type: ignore[misc]


class AdamEpsilonHat(EpsilonHat, torch.optim.Adam):
    """Adam with ε̂ added to the uncorrected √v (Kingma & Ba 2015, before §2.1)."""


class AdamWEpsilonHat(EpsilonHat, torch.optim.AdamW):
    """AdamW (Loshchilov & Hutter 2019) with ε̂ added to the uncorrected √v."""
