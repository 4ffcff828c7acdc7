"""USB's loss and masking formulas (microsoft/Semi-supervised-learning, semilearn, commit
1ef4cbebcc0b368158315aeb425053858cf6c845), ported with their names: the shared reference of the
agreement tests of the SSL strategies ported from USB."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def usb_ce_loss(logits, targets, reduction="none"):
    """semilearn/core/criterions/cross_entropy.py: ce_loss."""
    if logits.shape == targets.shape:
        nll_loss = torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=1)
        return nll_loss if reduction == "none" else nll_loss.mean()
    return F.nll_loss(F.log_softmax(logits, dim=-1), targets, reduction=reduction)


def usb_consistency_loss(logits, targets, name="ce", mask=None):
    """semilearn/core/criterions/consistency.py: consistency_loss ('ce' and 'mse')."""
    if name == "mse":
        loss = F.mse_loss(torch.softmax(logits, dim=-1), targets, reduction="none").mean(dim=1)
    else:
        loss = usb_ce_loss(logits, targets, reduction="none")
    if mask is not None:
        loss = loss * mask
    return loss.mean()


def usb_fixed_masking(probs_x_ulb, p_cutoff):
    """semilearn/algorithms/hooks/masking.py: FixedThresholdingHook.masking (softmax_x_ulb=False)."""
    max_probs, _ = torch.max(probs_x_ulb.detach(), dim=-1)
    return max_probs.ge(p_cutoff).to(max_probs.dtype)
