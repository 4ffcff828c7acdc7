"""Uncertainty scores: pure functions of predicted class probabilities.

Every function takes a probability tensor and returns one score per sample, computed on the
tensor's device with no host synchronisation. The *acquisition* scores follow one convention:
**higher = more worth querying**, so a picker (:func:`sslzoo._ops.picking.top_k`) takes the largest.

Shapes: ``p`` is ``(N, C)`` (one deterministic forward pass: N samples, C classes) for
:func:`least_confidence`, :func:`margin`, :func:`margin_score` and :func:`entropy`, and
``(N, C, T)`` (T stochastic MC-dropout passes) for :func:`bald`, :func:`mc_entropy`,
:func:`variation_ratios` and :func:`mean_std`. Half-precision inputs are computed in float32;
float64 inputs stay float64. Entropies are in nats, computed with ``xlogy`` so that
``0 · log 0 = 0``.

References:

* Settles, B. (2009). *Active Learning Literature Survey*. Computer Sciences Technical Report
  1648, University of Wisconsin–Madison. §3.1 (uncertainty sampling: least confident, margin,
  entropy).
* Gal, Y., Islam, R. & Ghahramani, Z. (2017). *Deep Bayesian Active Learning with Image Data*.
  Proceedings of the 34th International Conference on Machine Learning (ICML), PMLR 70:1183–1192.
  §3 (max entropy, BALD, variation ratios, mean STD over MC-dropout passes).
* Houlsby, N., Huszár, F., Ghahramani, Z. & Lengyel, M. (2011). *Bayesian Active Learning for
  Classification and Preference Learning*. arXiv:1112.5745 (BALD).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["bald", "entropy", "least_confidence", "margin", "margin_score", "mc_entropy", "mean_std",
           "variation_ratios"]


def _as_float(p: Tensor, ndim: int, name: str) -> Tensor:
    """``p`` checked to have ``ndim`` dimensions and at least one class, as float32/float64."""
    if not isinstance(p, Tensor) or p.dim() != ndim:
        shape = "(N, C)" if ndim == 2 else "(N, C, T)"
        got = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
        raise ValueError(f"{name} expects probabilities shaped {shape}, got {got}")
    if p.shape[1] < 1:
        raise ValueError(f"{name} expects at least one class, got shape {tuple(p.shape)}")
    return p if p.dtype in (torch.float32, torch.float64) else p.float()


def _entropy(p: Tensor) -> Tensor:
    """Shannon entropy (nats) over dim 1; ``xlogy`` makes ``0 log 0 = 0``. Never negative."""
    return (-torch.special.xlogy(p, p).sum(dim=1)).clamp_min(0.0)


# -- one deterministic pass: (N, C) ---------------------------------------------------------------


def least_confidence(p: Tensor) -> Tensor:
    """``1 - max_c p(c|x)``: how unsure the model is of its own prediction (Settles 2009, §3.1).

    In ``[0, 1 - 1/C]``; higher = more worth querying. ``p``: ``(N, C)`` → ``(N,)``.
    """
    p = _as_float(p, 2, "least_confidence")
    return 1.0 - p.amax(dim=1)


def margin(p: Tensor) -> Tensor:
    """The margin ``p(top1|x) - p(top2|x)`` between the two most probable classes, in ``[0, 1]``.

    This is the raw margin (Scheffer et al. 2001; Settles 2009, §3.1): **small** margins are
    ambiguous. For the acquisition score (higher = more worth querying) use
    :func:`margin_score` = ``1 - margin``. With a single class the margin is 1.
    ``p``: ``(N, C)`` → ``(N,)``.
    """
    p = _as_float(p, 2, "margin")
    if p.shape[1] == 1:
        return torch.ones(p.shape[0], dtype=p.dtype, device=p.device)
    top2 = p.topk(2, dim=1).values
    return (top2[:, 0] - top2[:, 1]).clamp(0.0, 1.0)


def margin_score(p: Tensor) -> Tensor:
    """The margin-sampling acquisition score ``1 - margin(p)`` in ``[0, 1]``; higher = smaller margin.

    ``p``: ``(N, C)`` → ``(N,)``. Ranking by it is the same as ranking by the smallest margin.
    """
    return 1.0 - margin(p)


def entropy(p: Tensor) -> Tensor:
    """Predictive entropy ``-Σ_c p log p`` in nats, in ``[0, log C]`` (Settles 2009, §3.1).

    Uniform probabilities give ``log C``; a one-hot prediction gives 0. ``p``: ``(N, C)`` → ``(N,)``.
    """
    return _entropy(_as_float(p, 2, "entropy"))


# -- T stochastic MC-dropout passes: (N, C, T) ----------------------------------------------------


def mc_entropy(p: Tensor) -> Tensor:
    """Max Entropy over MC-dropout (Gal et al. 2017): the entropy of the mean over the T passes.

    ``H[ (1/T) Σ_t p_t ]`` in ``[0, log C]``. ``p``: ``(N, C, T)`` → ``(N,)``.
    """
    p = _as_float(p, 3, "mc_entropy")
    return _entropy(p.mean(dim=2))


def bald(p: Tensor) -> Tensor:
    """BALD (Houlsby et al. 2011; Gal et al. 2017): mutual information between the prediction and
    the model parameters, ``H[mean_t p_t] - mean_t H[p_t]``.

    In ``[0, H[mean_t p_t]] ⊆ [0, log C]``; 0 when every pass agrees (no epistemic uncertainty).
    Rounding can push the difference slightly outside these bounds; it is clamped into them.
    ``p``: ``(N, C, T)`` → ``(N,)``.
    """
    p = _as_float(p, 3, "bald")
    total = _entropy(p.mean(dim=2))
    expected = (-torch.special.xlogy(p, p).sum(dim=1)).mean(dim=1)
    return torch.minimum((total - expected).clamp_min(0.0), total)


def variation_ratios(p: Tensor) -> Tensor:
    """Variation ratios (Freeman 1965; Gal et al. 2017): ``1 - f_m / T``, where ``f_m`` is how
    many of the T passes predict the modal class (the class most passes predict).

    In ``[0, 1 - 1/min(C, T)]``; 0 when every pass predicts the same class. ``p``: ``(N, C, T)`` → ``(N,)``.
    """
    p = _as_float(p, 3, "variation_ratios")
    n, c, t = p.shape
    votes = p.argmax(dim=1)  # (N, T)
    counts = torch.zeros(n, c, dtype=p.dtype, device=p.device)
    counts.scatter_add_(1, votes, torch.ones(n, t, dtype=p.dtype, device=p.device))
    return 1.0 - counts.amax(dim=1) / max(t, 1)


def mean_std(p: Tensor) -> Tensor:
    """Mean STD (Kampffmeyer et al. 2016; Gal et al. 2017): the mean over classes of the standard
    deviation over passes, ``(1/C) Σ_c sqrt(E_t[p_c²] - E_t[p_c]²)`` (population std over T).

    In ``[0, 0.5]``; 0 when every pass agrees. ``p``: ``(N, C, T)`` → ``(N,)``.
    """
    p = _as_float(p, 3, "mean_std")
    return p.std(dim=2, correction=0).mean(dim=1)
