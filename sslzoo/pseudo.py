"""The argmax pseudo-labeler: the shared base of strategies whose labels are the model's guesses.

Following Lee (2013), a pseudo-label is the class of maximum predicted probability (dropout off,
no gradient), and that probability is its confidence. ``select`` usually computes that
prediction already; :meth:`ArgmaxPseudoLabeler.accept` remembers it so ``label`` reuses the
forward pass instead of repeating it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from sslzoo.strategy import Labels, Strategy

if TYPE_CHECKING:
    from sslzoo.context import Context


def argmax_labels(ctx: Context, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(max probability, argmax) of the current model for ``ids``, dropout off and no gradient."""
    if ids.numel() == 0:
        return torch.zeros(0, device=ids.device), ids.new_zeros(0)
    confidence, targets = ctx.predict(ids).max(dim=1)
    return confidence, targets


class ArgmaxPseudoLabeler(Strategy):
    """Base of the pseudo-labeling strategies: ``label`` = argmax with its probability."""

    family = "ssl"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._accepted: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def accept(self, chosen: torch.Tensor, targets: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """Return ``chosen`` from ``select``, remembering their predicted labels for ``label``."""
        self._accepted = (chosen, targets, confidence)
        return chosen

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        """The argmax of the model (dropout off, no gradient) with its probability as confidence."""
        if self._accepted is not None and self._accepted[0] is ids:
            _, targets, confidence = self._accepted
        else:
            confidence, targets = argmax_labels(ctx, ids)
        self._accepted = None
        return Labels.pseudo(ids, targets, confidence)
