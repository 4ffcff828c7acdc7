"""What a strategy sees of a run: the :class:`Context` passed to every hook."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from sslzoo._contract.labels import ORACLE
from sslzoo._contract.ledger import Ledger
from sslzoo._contract.oracle import CALL_RETURNED, OUTSIDE_LABEL, OracleHandle
from sslzoo._contract.plugin_api import MIGRATION_PAGE
from sslzoo._ops import embedding, inference
from sslzoo._ops.embedding import GradientEmbedding
from sslzoo._ops.ensemble import Ensemble
from sslzoo._ops.inference import Precision
from sslzoo._ops.teacher import Teacher, Teachers, View
from sslzoo.errors import PluginError


@dataclass
class Context:
    """The run as a strategy sees it: the model being trained (``model``, in training mode during
    ``loss``), all training inputs (``x``, indexed by global id), the ledger of the labels given so far,
    the run's random generator, and where the run stands (round, epoch, step).

    ``unlabeled_batches`` counts the unlabeled batches drawn so far in this round's training (the
    current step's included) and ``labeled_passes`` the full passes over the labeled set finished.
    ``activation`` says how the model's logits score the classes (``"softmax"``, or ``"sigmoid"`` for
    a model that declares ``output_activation = "sigmoid"``), for
    :func:`~sslzoo._contract.strategy.weighted_cross_entropy`.

    It holds no hidden label: the ledger knows only the labels given so far, and ``oracle`` answers
    only inside a ``label`` call (see :mod:`sslzoo._contract.oracle`).
    """

    model: nn.Module
    x: torch.Tensor
    ledger: Ledger
    generator: torch.Generator
    num_classes: int
    seed: int
    round: int = 0
    epoch: int = 0
    epochs: int = 1
    step: int = 0
    steps_per_epoch: int = 1
    step_in_epoch: int = 0
    unlabeled_batches: int = 0
    labeled_passes: int = 0
    precision: Precision = "auto"
    activation: str = "softmax"
    teachers: Teachers | None = field(default=None, repr=False)  # the engine's; strategies call teacher
    ensembles: Callable[[int], Ensemble] | None = field(default=None, repr=False)  # the engine's; strategies
    # call ensemble
    _oracle: OracleHandle | None = field(default=None, init=False, repr=False)
    _where: str = field(default="", init=False, repr=False)  # the strategy, as the engine's errors name it
    _training: bool = field(default=False, init=False, repr=False)  # in a step: predictions may enter a loss

    @property
    def oracle(self) -> OracleHandle:
        """The oracle of the ``label`` call under way, or a closed one that says where it can be asked."""
        if self._oracle is not None:
            return self._oracle
        reason = OUTSIDE_LABEL
        return OracleHandle.closed(f"{self._where}, round {self.round}: {reason}" if self._where else reason)

    @contextlib.contextmanager
    def asking(self, handle: OracleHandle) -> Iterator[None]:
        """For the engine: ``handle`` is ``oracle`` for the block (one ``label`` call), then it is closed."""
        self._oracle = handle
        try:
            yield
        finally:
            self._oracle = None
            handle.close(CALL_RETURNED)

    @property
    def phase(self) -> str:
        """Deprecated since plugin API 1.0 (removed in 1.1): ``"step"`` inside ``loss``, ``"round"``
        elsewhere. The hooks have one meaning each now: ``select``, ``label`` and ``weight`` run once
        per round, so a 0.x strategy's ``if ctx.phase != "round"`` test passes there."""
        warnings.warn(f"ctx.phase is deprecated since plugin API 1.0 and removed in 1.1: select, label and weight "
                      f"run once per round and loss once per step, so no hook needs it (see {MIGRATION_PAGE})",
                      DeprecationWarning, stacklevel=2)
        return "step" if self._training else "round"

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

    def _grad_free(self) -> str:
        """Inside a step, predictions are made under ``no_grad`` (they may enter the loss); elsewhere
        under ``inference_mode``."""
        return "no_grad" if self._training else "inference"

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """For the engine: the block is one optimizer step's ``loss``."""
        self._training = True
        try:
            yield
        finally:
            self._training = False

    def predict(self, ids: torch.Tensor, view: View | None = None) -> torch.Tensor:
        """Class probabilities (k, C) of the current model for ``ids``, dropout off, no gradient.

        ``view`` is applied to the inputs of ``ids`` first, chunk by chunk: a function from a batch of
        inputs (a tensor ``ctx.x[chunk]``) to the batch the model sees (e.g. a weak augmentation).
        """
        mode = self._grad_free()
        return inference.probabilities(self.model, self.x, ids, grad_free=mode, precision=self.precision, view=view)

    def teacher(self, decay: float | None = None, name: str = "teacher", warmup: bool = True) -> Teacher:
        """The teacher ``name``: a copy of the model whose weights follow it by an exponential moving
        average with ``decay``, updated by the engine after every optimizer step (see
        :mod:`sslzoo._ops.teacher`).

        The first call for a name since the model was built creates it from the model's weights of
        that moment and must give its ``decay`` (``warmup``: the plain mean of the weights until the
        decay takes over); a later call returns the same teacher and, given a ``decay``, sets it (a
        schedule passes the decay of the moment). Not in ``check``: there is no model yet.
        """
        if self.teachers is None:
            raise PluginError(f"{self._where or 'a strategy'}: ctx.teacher was called before the first model was "
                              f"built (in check); ask for a teacher from a hook that runs with the model")
        return self.teachers.get(name, decay, warmup, self._where or "a strategy")

    def predict_mc(self, ids: torch.Tensor, passes: int, consistent: bool = False) -> torch.Tensor:
        """Class probabilities (k, C, T) of ``passes`` MC-dropout forward passes for ``ids`` (every
        dropout stochastic, masks from the run's generator). ``consistent``: pass t uses the same
        dropout masks for every id (one sampled set of weights per pass, as joint predictions over
        several ids need, e.g. BatchBALD); otherwise every id draws its own masks."""
        return inference.mc_probabilities(self.model, self.x, ids, passes, self.generator, precision=self.precision,
                                          consistent=consistent)

    def ensemble(self, members: int) -> Ensemble:
        """A deep ensemble of ``members`` models (K) trained now, for this round: each a fresh copy of
        the run's model, initialised from a seed derived from the run's seed, the round and its index,
        and trained on the training set the run's model trained on, as the run trains it (supervised
        loss, the run's optimizer, epochs and batches), in one batched pass where the model allows;
        see :mod:`sslzoo._engine.ensemble`. Its :meth:`~sslzoo._ops.ensemble.Ensemble.probabilities`
        (k, C, K) take the place of MC-dropout's passes. Every call trains K new members: ask once a
        round. The run's own model and random state are left as they were."""
        if self.ensembles is None:
            raise PluginError(f"{self._where or 'a strategy'}: ctx.ensemble was called outside a run; the engine "
                              f"trains the members, from select (or choose, score) in a run")
        if members < 1:
            raise PluginError(f"{self._where or 'a strategy'}: ctx.ensemble needs at least 1 member, got {members}")
        return self.ensembles(members)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Embeddings (k, D) of ``ids``: the input of the model's embedding layer (its last
        ``nn.Linear``, or the module its ``embedding_layer`` attribute names; see
        :mod:`sslzoo._ops.embedding`), dropout off, no gradient, float32 on the device."""
        mode = self._grad_free()
        return embedding.embeddings(self.model, self.x, ids, grad_free=mode, precision=self.precision)

    def gradient_embedding(self, ids: torch.Tensor) -> GradientEmbedding:
        """Per-id gradients of the loss w.r.t. the embedding layer's weight for the predicted labels
        (BADGE's gradient embedding), in closed form and factored: ``outer(a[i], h[i])`` with ``a``
        (k, C) and ``h`` (k, D) = :meth:`embed`; see :class:`sslzoo._ops.embedding.GradientEmbedding`."""
        return embedding.gradient_embeddings(self.model, self.x, ids, precision=self.precision)
