"""The argmax pseudo-labeler: the shared base of strategies whose labels are the model's guesses.

Following Lee (2013), a pseudo-label is the class of maximum predicted probability (dropout off,
no gradient), and that probability is its confidence: :func:`argmax_labels`. A round-level
pseudo-labeler (self-training) selects pool ids in ``select`` and labels them with that argmax in
``label``; a step-level one (``level = "step"``) pseudo-labels its unlabeled batch inside ``loss``.
"""

from __future__ import annotations

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.labels import Labels
from sslzoo._contract.strategy import Strategy


def argmax_labels(ctx: Context, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(max probability, argmax) of the current model for ``ids``, dropout off and no gradient."""
    if ids.numel() == 0:
        return torch.zeros(0, device=ids.device), ids.new_zeros(0)
    confidence, targets = ctx.predict(ids).max(dim=1)
    return confidence, targets


class ArgmaxPseudoLabeler(Strategy):
    """Base of the pseudo-labeling strategies: ``label`` = argmax with its probability."""

    family = "ssl"

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        """The argmax of the model (dropout off, no gradient) with its probability as confidence."""
        confidence, targets = argmax_labels(ctx, ids)
        return Labels.pseudo(ids, targets, confidence)
