"""What a strategy sees of a run: the :class:`Context` passed to every hook, and the guarded oracle."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from sslzoo import inference
from sslzoo.errors import OracleError
from sslzoo.inference import Precision
from sslzoo.ledger import Ledger
from sslzoo.prefix import SharedPrefix
from sslzoo.strategy import ORACLE, Labels


class Oracle:
    """The hidden ground truth of the training set, readable only inside a ``label`` hook."""

    def __init__(self, targets: torch.Tensor) -> None:
        self._targets = targets
        self._open = False

    @contextlib.contextmanager
    def open(self) -> Iterator[None]:
        """Allow reads for the duration of one ``label`` call."""
        self._open = True
        try:
            yield
        finally:
            self._open = False

    def __call__(self, ids: torch.Tensor) -> Labels:
        if not self._open:
            raise OracleError("the oracle was read outside the label hook: a strategy may ask for "
                              "true labels only in label()")
        return Labels(ids, self._targets[ids], torch.ones(ids.numel(), device=ids.device),
                      torch.full((ids.numel(),), ORACLE, dtype=torch.int8, device=ids.device))

    def reveal(self, ids: torch.Tensor) -> torch.Tensor:
        """True labels for the engine's own reports (pseudo-label accuracy), never for strategies."""
        return self._targets[ids]


@dataclass
class Context:
    """The run as a strategy sees it. ``phase`` is "round" (pool-level hooks) or "step".

    ``unlabeled_batches`` counts the unlabeled batches drawn so far in this round's training (the
    current step's included) and ``labeled_passes`` the full passes over the labeled set finished.
    """

    model: nn.Module
    x: torch.Tensor
    ledger: Ledger
    oracle: Oracle
    generator: torch.Generator
    num_classes: int
    seed: int
    phase: Literal["round", "step"] = "round"
    round: int = 0
    epoch: int = 0
    epochs: int = 1
    step: int = 0
    steps_per_epoch: int = 1
    step_in_epoch: int = 0
    unlabeled_batches: int = 0
    labeled_passes: int = 0
    precision: Precision = "auto"
    prefix: SharedPrefix | None = field(default=None, repr=False)  # the engine's; strategies call predict

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def progress(self) -> float:
        """Epochs done in this round, fractional within an epoch."""
        return self.epoch + self.step_in_epoch / max(1, self.steps_per_epoch)

    def pool_ids(self) -> torch.Tensor:
        """Unlabeled ids (neither oracle- nor pseudo-labeled)."""
        return self.ledger.pool()

    def labeled_ids(self) -> torch.Tensor:
        """Oracle-labeled ids."""
        return self.ledger.oracle()

    def pseudo_ids(self) -> torch.Tensor:
        """Pseudo-labeled ids."""
        return self.ledger.pseudo()

    @property
    def n_labeled(self) -> int:
        """How many ids the oracle has labeled so far."""
        return int((self.ledger.source == ORACLE).sum())

    def predict(self, ids: torch.Tensor) -> torch.Tensor:
        """Class probabilities (k, C) of the current model for ``ids``, dropout off, no gradient.

        In a step that trains on ``ids`` alone, the layers before the first mode-dependent one are
        computed once for this prediction and the training forward (:mod:`sslzoo.prefix`).
        """
        shared = self.prefix.probabilities(ids) if self.prefix is not None else None
        if shared is not None:
            return shared
        mode = "inference" if self.phase == "round" else "no_grad"
        return inference.probabilities(self.model, self.x, ids, grad_free=mode, precision=self.precision)

    def predict_mc(self, ids: torch.Tensor, passes: int) -> torch.Tensor:
        """Class probabilities (k, C, T) of ``passes`` MC-dropout forward passes for ``ids`` (every
        dropout stochastic, masks from the run's generator)."""
        return inference.mc_probabilities(self.model, self.x, ids, passes, self.generator, precision=self.precision)
