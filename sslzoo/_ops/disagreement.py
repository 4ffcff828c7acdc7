"""Committee disagreement: scores of the class probabilities of K committee members, ``p`` (N, C, K)
(the layout of MC-dropout's T passes), one score per sample, higher = the members disagree more.

* :func:`vote_entropy`: the entropy of the members' votes (Dagan & Engelson 1995; Engelson &
  Dagan 1996, as scikit-activeml's ``vote_entropy`` and modAL's): each member votes for its most
  probable class (the first on a tie) and the score is ``-Σ_c (V_c/K) log(V_c/K)``, ``V_c`` the
  members voting for c.
* consensus entropy, the entropy of the members' mean prediction (Settles 2009, §3.4; modAL's
  ``consensus_entropy``), is :func:`sslzoo.scores.mc_entropy` over the members.
* :func:`kl_to_mean`: each member's Kullback-Leibler divergence from the consensus (the mean
  prediction), ``D(p_k ‖ p̄) = Σ_c p_k(c) log(p_k(c) / p̄(c))`` (K,); :func:`max_kl` is its maximum
  over the members (modAL's ``KL_max_disagreement``). Its mean over the members, McCallum & Nigam
  (1998)'s "KL divergence to the mean" (scikit-activeml's ``average_kl_divergence``), is exactly
  ``H[p̄] - mean_k H[p_k]``: BALD over the members (:func:`sslzoo.scores.bald`).

Where sslzoo differs: scikit-activeml clips the probabilities at ``eps`` = 1e-7 and renormalises
them before the logarithm; sslzoo computes ``0 · log 0 = 0`` exactly (``xlogy``), which agrees with
it wherever no probability is below ``eps``.

References: Seung, H. S., Opper, M. & Sompolinsky, H. (1992). Query by Committee. Proceedings of
the 5th Annual Workshop on Computational Learning Theory (COLT), 287–294. McCallum, A. & Nigam, K.
(1998). Employing EM and Pool-Based Active Learning for Text Classification. ICML 1998.
Dagan, I. & Engelson, S. P. (1995). Committee-Based Sampling for Training Probabilistic
Classifiers. ICML 1995, 150–157.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kl_to_mean", "max_kl", "vote_entropy"]


def _checked(p: Tensor, name: str) -> Tensor:
    if not isinstance(p, Tensor) or p.dim() != 3 or p.shape[1] < 1:
        got = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
        raise ValueError(f"{name} expects probabilities shaped (N, C, K) with at least one class, got {got}")
    return p if p.dtype in (torch.float32, torch.float64) else p.float()


def vote_entropy(p: Tensor) -> Tensor:
    """The entropy (nats) of the members' votes, in ``[0, log min(C, K)]``. ``p``: (N, C, K) → (N,)."""
    p = _checked(p, "vote_entropy")
    n, c, k = p.shape
    counts = torch.zeros(n, c, dtype=p.dtype, device=p.device)
    counts.scatter_add_(1, p.argmax(dim=1), torch.ones(n, k, dtype=p.dtype, device=p.device))
    share = counts / max(k, 1)
    return (-torch.special.xlogy(share, share).sum(dim=1)).clamp_min(0.0)


def kl_to_mean(p: Tensor) -> Tensor:
    """Each member's KL divergence (nats) from the members' mean prediction. ``p``: (N, C, K) → (N, K)."""
    p = _checked(p, "kl_to_mean")
    mean = p.mean(dim=2, keepdim=True)
    return (torch.special.xlogy(p, p) - torch.special.xlogy(p, mean)).sum(dim=1).clamp_min(0.0)


def max_kl(p: Tensor) -> Tensor:
    """The largest KL divergence of a member from the members' mean prediction. ``p``: (N, C, K) → (N,)."""
    return kl_to_mean(_checked(p, "max_kl")).amax(dim=1)
