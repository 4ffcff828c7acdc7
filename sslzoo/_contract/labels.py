"""Labels and where they came from: the values a strategy's ``label`` hook returns and the ledger keeps."""

from __future__ import annotations

from dataclasses import dataclass

import torch

POOL, ORACLE, PSEUDO, HELD_OUT = 0, 1, 2, 3  # where a training id's label came from (HELD_OUT: none, ever)


@dataclass
class Labels:
    """Labels for some global ids: the class, how sure, and where each came from.

    ``source`` holds ``ORACLE`` or ``PSEUDO`` per id (int8); build with :meth:`pseudo` or ask
    the oracle (``ctx.oracle(ids)``).
    """

    ids: torch.Tensor
    targets: torch.Tensor
    confidence: torch.Tensor
    source: torch.Tensor

    @classmethod
    def pseudo(cls, ids: torch.Tensor, targets: torch.Tensor, confidence: torch.Tensor) -> Labels:
        """Pseudo-labels: the model's guesses ``targets`` with their ``confidence``."""
        return cls(ids, targets, confidence.float(),
                   torch.full((ids.numel(),), PSEUDO, dtype=torch.int8, device=ids.device))

    def __len__(self) -> int:
        return int(self.ids.numel())

    def subset(self, keep: torch.Tensor) -> Labels:
        """The labels where the boolean mask ``keep`` is true."""
        return Labels(self.ids[keep], self.targets[keep], self.confidence[keep], self.source[keep])

    def cat(self, other: Labels) -> Labels:
        """These labels followed by ``other``'s."""
        return Labels(torch.cat([self.ids, other.ids]), torch.cat([self.targets, other.targets]),
                      torch.cat([self.confidence, other.confidence]), torch.cat([self.source, other.source]))
