"""Pretraining methods: a self-supervised stage that trains a model's backbone on the pool before round 0.

A run with the training option ``pretrain`` (``sslzoo bench --pretrain NAME[:KEY=VALUE,...]``)
first trains its model's *backbone* (every layer before its embedding layer,
:func:`sslzoo._ops.embedding.embedding_layer`: the input of its last linear layer) on the inputs of
its pool and starting labels, without a label, by the method that ``NAME`` registers. Methods are
registered by name like strategies (the ``register_pretrainers`` hook: a plugin can add one) and
listed by ``sslzoo pretrainers``. The engine (:mod:`sslzoo._engine.pretraining`) owns the loop: each
epoch a random order of the inputs in batches of ``batch_size`` (a last partial batch is dropped),
two random views of each batch (:meth:`Pretrainer.views`), the method's :meth:`Pretrainer.loss`, an
optimizer step over the backbone and the method's :meth:`Pretrainer.head`; the head is dropped
afterwards. The stage is cached by content, so every strategy and seed of a grid that trains the
same model on the same inputs with the same method, options and ``seed`` reuses it.

A pretrainer sees inputs only: the learner that runs it holds no hidden label.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from sslzoo._contract.options import Configured
from sslzoo._ops.views import random_view

Embed = Callable[[Tensor], Tensor]
"""The backbone being trained: inputs (N, ...) → their embeddings (N, D), with gradients."""


@dataclass
class PretrainOptions:
    """Options every pretraining method has; a method's ``Options`` subclass sets its paper's defaults."""

    epochs: int = field(default=20, metadata={"min": 1, "help": "passes over the pretraining inputs"})
    batch_size: int = field(default=256, metadata={"min": 2, "help": "inputs per step (each gives two views)"})
    optimizer: Literal["sgd", "adam"] = field(default="adam", metadata={"help": "optimizer"})
    lr: float = field(default=3e-4, metadata={"min": 0.0, "help": "learning rate"})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0, "help": "SGD momentum"})
    weight_decay: float = field(default=1e-4, metadata={"min": 0.0, "help": "L2 penalty"})
    schedule: Literal["constant", "cosine"] = field(default="constant", metadata={
        "help": "the learning rate over the epochs: constant, or cosine decay to 0 (per epoch)"})
    seed: int = field(default=0, metadata={
        "min": 0, "help": "the stage's own seed (not the run's, so that every seed of a grid shares one stage)"})
    crop_min: float = field(default=0.08, metadata={
        "min": 0.01, "max": 1.0, "help": "the smallest area of a random resized crop, as a fraction of the image"})
    jitter: float = field(default=0.5, metadata={
        "min": 0.0, "help": "the colour distortion's strength on RGB images (0: none)"})
    rotation: float = field(default=10.0, metadata={
        "min": 0.0, "max": 180.0, "help": "the largest rotation, in degrees, of a view of a non-RGB image"})


class Pretrainer(Configured, ABC):
    """Base of the pretraining methods: a :meth:`head` trained on the backbone's embeddings and
    dropped afterwards, and the :meth:`loss` of two views of a batch. The engine owns the loop (see
    the module's docstring).

    Subclasses set ``name``, ``paper`` and ``summary``, their ``Options`` dataclass (a
    :class:`PretrainOptions` subclass, built strictly from the ``KEY=VALUE`` options: a bad one is an
    :class:`~sslzoo.errors.OptionError`), :meth:`head` and :meth:`loss`; :meth:`views` may be
    overridden (default: :func:`sslzoo._ops.views.random_view` twice).
    """

    kind: ClassVar[str] = "pretraining method"
    Options: ClassVar[type] = PretrainOptions

    @abstractmethod
    def head(self, width: int) -> nn.Module:
        """The layers the method trains on embeddings of ``width`` features (a projection head, a
        predictor), dropped after the stage."""

    @abstractmethod
    def loss(self, embed: Embed, head: nn.Module, first: Tensor, second: Tensor) -> Tensor:
        """The objective of a batch's two views ``first`` and ``second`` (each (N, ...), view i of the
        same input in both), computed through the backbone ``embed`` and the method's ``head``."""

    def views(self, x: Tensor, generator: torch.Generator, pixels: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """Two random views of the batch ``x``; ``pixels`` is each channel's range over the pool."""
        o = self.options
        first = random_view(x, generator, pixels, o.crop_min, o.jitter, o.rotation)
        return first, random_view(x, generator, pixels, o.crop_min, o.jitter, o.rotation)

