"""Ramp-ups: how the weight of a consistency loss grows from 0 to its maximum early in training.

The ramp-up of the Π-model and temporal ensembling (Laine & Aila 2017, section 3.1) and of the mean
teacher (Tarvainen & Valpola 2017, whose code calls it ``sigmoid_rampup``) is the same Gaussian
curve, ``exp(-5 (1 - T)^2)`` for T going linearly from 0 to 1 over the ramp-up, then 1.
"""

from __future__ import annotations

import math


def sigmoid_rampup(step: float, length: float) -> float:
    """``exp(-5 (1 - T)^2)`` with ``T = step / length`` clipped to [0, 1]: 0.0067 at the start, 1 from
    ``length`` on (and throughout when ``length`` is 0)."""
    if length <= 0:
        return 1.0
    t = min(max(step / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)
