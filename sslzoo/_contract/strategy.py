"""The Strategy base class: the four hooks ``select``, ``label``, ``weight`` and ``loss``.

A strategy answers four questions the engine asks (see ``docs/strategies.md``), each hook with one
meaning:

* ``select(ctx, pool)`` — once per round: which of the unlabeled pool's global ids get a label now
  (active-learning queries, self-training acceptances)?
* ``label(ctx, ids)`` — what label do the selected ids get (the oracle's, the model's argmax, ...)?
* ``weight(ctx, labels)`` — how much does each of them count in the loss?
* ``loss(ctx, step)`` — once per optimizer step: the training objective of the step's labeled
  batch and unlabeled ids, returned with what it pseudo-labeled (:class:`StepLoss`), so that the
  engine can count and audit every pseudo-label.

The defaults give supervised training: nothing is selected, labels come from the oracle,
every sample weighs 1, and the loss is the cross-entropy on the labeled batch. Data flows between
the hooks through their arguments and return values only.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from sslzoo._contract.context import Context
from sslzoo._contract.labels import Labels
from sslzoo._contract.options import describe_options, make_options, options_dict
from sslzoo._ops.inference import Precision

FAMILIES = ("baseline", "ssl", "al", "hybrid")


@dataclass
class TrainOptions:
    """Training hyper-parameters every strategy has; ``None`` takes the dataset's default."""

    epochs: int | None = field(default=None, metadata={"min": 1, "help": "epochs per round"})
    batch_size: int | None = field(default=None, metadata={"min": 1, "help": "labeled batch size"})
    samples_per_epoch: int = field(default=0, metadata={
        "min": 0, "recorded": "when set",
        "help": "labeled samples an epoch draws, with repetition, when more than the labeled set (BatchBALD's "
                "RandomFixedLengthSampler; 0: one pass over the labeled set)"})
    last_batch: Literal["keep", "drop", "even"] = field(default="keep", metadata={
        "recorded": "when set",
        "help": "a pass's last partial batch: keep it, drop it (a set smaller than a batch is one batch), or split "
                "the pass into equal-size batches (sizes differing by at most 1)"})
    lr: float | None = field(default=None, metadata={"min": 0.0, "help": "learning rate"})
    optimizer: Literal["sgd", "adam", "adamw"] | None = field(default=None, metadata={"help": "optimizer"})
    momentum: float | None = field(default=None, metadata={"min": 0.0, "max": 1.0, "help": "SGD momentum"})
    weight_decay: float | None = field(default=None, metadata={"min": 0.0, "help": "L2 penalty"})
    lr_decay: float = field(default=1.0, metadata={
        "min": 0.0, "max": 1.0, "help": "multiply the learning rate by this after every epoch (1: constant)"})
    nesterov: bool = field(default=False, metadata={
        "recorded": "when set", "help": "SGD with Nesterov momentum (FixMatch's and USB's optimizer); needs "
                                        "optimizer=sgd and a momentum above 0"})
    lr_schedule: Literal["exponential", "fixmatch_cosine"] = field(default="exponential", metadata={
        "recorded": "when set",
        "help": "exponential: lr × lr_decay ** epoch; fixmatch_cosine: lr × cos(7π · epoch / (16 · epochs)), "
                "FixMatch's decay (Sohn et al. 2020) over the round's epochs, with lr_decay 1"})
    retrain: Literal["scratch", "warm"] = field(
        default="scratch", metadata={"help": "between rounds: a fresh model, or keep training the last one"})
    fit_features: Literal["training_set", "initial_labels"] = field(default="training_set", metadata={
        "help": "fitted feature layers (e.g. the PCA of pca_poly_logreg) are fitted on each fresh model's training "
                "set, or on the initial labeled set only"})
    pretrain: str = field(default="", metadata={
        "recorded": "when set",
        "help": "a self-supervised stage before round 0, NAME[:KEY=VALUE,...] (sslzoo pretrainers lists them): the "
                "model's backbone trained on the pool's inputs, cached by content and shared by every run that needs "
                "it; every fresh model starts from it (empty: none)"})
    pretrain_use: Literal["finetune", "probe"] = field(default="finetune", metadata={
        "recorded": "when set",
        "help": "with pretrain: train the whole model from the pretrained backbone (finetune), or only its last "
                "linear layer on the frozen backbone (probe: a linear probe)"})
    eval_every: int = field(default=0, metadata={"min": 0, "help": "also evaluate every N epochs (0: end of round)"})
    patience: int = field(default=0, metadata={
        "min": 0, "help": "stop a round's training after N epochs without a better accuracy and keep the best weights "
                          "(0: off): on the validation set when there is one, else on the test set (as some "
                          "published protocols did; such records are flagged as selected on the test set)"})
    validation: int = field(default=0, metadata={
        "min": 0, "recorded": "when set",
        "help": "draw N random ids of the pool, with the run's seed, as a labeled validation set, never trained on "
                "or queried; each round keeps the weights of its best epoch on it (and stops early with patience)"})
    validation_counted: bool = field(default=False, metadata={
        "recorded": "when set",
        "help": "count the validation labels among the oracle labels (false: as protocols that take the "
                "validation set for free, e.g. BatchBALD's)"})
    recipe: str = field(default="default", metadata={
        "help": "the training recipe: reproduction-specific optimiser and schedule semantics, by name (sslzoo "
                "recipes lists them; default: PyTorch's)"})
    stop: str = field(default="", metadata={
        "recorded": "when set",
        "help": "a stopping criterion asked after each round, NAME[:KEY=VALUE,...] (sslzoo stopping-criteria lists "
                "them); when it fires the run ends and its record says why (empty: none, the run goes to its end)"})
    watch: str = field(default="", metadata={
        "recorded": "when set",
        "help": "stopping criteria asked after each round as stop is, none of them ending the run: "
                "NAME[:KEY=VALUE,...], several separated by ';'; the record's watched entry says the round each "
                "first fired on, with how many oracle labels, and why (the stopping study; empty: none)"})
    precision: Precision = field(default="auto", metadata={
        "help": "forward passes in bf16 autocast or fp32; auto: bf16 on CUDA, fp32 on the CPU (bf16 changes the "
                "numbers; on the CPU it pays where the matrix units take bf16, e.g. avx512_bf16)"})


@dataclass
class Batch:
    """The labeled batch of an optimizer step: global ids, their inputs, targets, loss weights and
    where each label came from (``source``: ``ORACLE``, or ``PSEUDO`` for a round's pseudo-label)."""

    ids: torch.Tensor
    x: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor
    source: torch.Tensor


@dataclass
class Step:
    """One optimizer step as :meth:`Strategy.loss` gets it: the ``labeled`` batch (empty in an
    unlabeled-only step) and the global ids of the ``unlabeled`` batch drawn from the pool (``None``
    when the epoch's plan draws none; their inputs are ``ctx.x[step.unlabeled]``)."""

    labeled: Batch
    unlabeled: torch.Tensor | None = None


@dataclass
class PseudoLabels:
    """What a step's loss pseudo-labeled: for each id of the unlabeled batch the class it was trained
    towards and how sure the model was; ``mask`` (boolean, one per id; ``None``: all) says which of
    them the loss used, so that a thresholded method reports the ids it kept, not those it dropped."""

    ids: torch.Tensor
    targets: torch.Tensor
    confidence: torch.Tensor
    mask: torch.Tensor | None = None

    def used(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, targets, confidence) of the pseudo-labels the loss used."""
        if self.mask is None:
            return self.ids, self.targets, self.confidence
        return self.ids[self.mask], self.targets[self.mask], self.confidence[self.mask]


class StepLoss(NamedTuple):
    """The return value of :meth:`Strategy.loss`: the loss to minimise and what the step pseudo-labeled
    (``None``: nothing)."""

    loss: torch.Tensor
    pseudo: PseudoLabels | None = None


class EpochPlan(NamedTuple):
    """How one training epoch draws its batches (the return value of :meth:`Strategy.epoch_plan`).

    ``labeled_every == 0`` (joint steps): one pass over the labeled set; each step is one labeled
    batch joined by ``unlabeled_batch_size`` ids from the pool (none when 0).
    ``labeled_every == N`` (alternating steps): one pass over the pool in unlabeled-only steps of
    ``unlabeled_batch_size`` ids, with a full labeled pass after every N of them (after the 1st,
    (N+1)th, ... of them with ``labeled_first``).
    """

    unlabeled_batch_size: int = 0
    labeled_every: int = 0
    labeled_first: bool = False


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                           activation: str = "softmax") -> torch.Tensor:
    """Mean over the samples of ``weight * CE(logits, target)``; 0 for no sample.

    ``activation`` says how the logits score the classes, as the model declares it (``ctx.activation``):
    ``"softmax"`` (one cross-entropy over the classes) or ``"sigmoid"`` (one sigmoid unit per class, whose
    binary cross-entropies add up, as in Lee 2013, eq. 2).
    """
    if targets.numel() == 0:
        return logits.sum() * 0.0
    logits = logits.float()
    if activation == "sigmoid":
        onehot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        per_sample = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none").sum(dim=1)
    else:
        per_sample = F.cross_entropy(logits, targets, reduction="none")
    return (per_sample * weights).mean()


def supervised_loss(ctx: Context, labeled: Batch) -> torch.Tensor:
    """The weighted cross-entropy of the model on a labeled batch (one forward pass)."""
    return weighted_cross_entropy(ctx.model(labeled.x), labeled.targets, labeled.weights, ctx.activation)


class Strategy:
    """Base class of every strategy; subclasses override only the hooks that differ.

    Class attributes: ``name`` (registry key), ``family`` (one of ``FAMILIES``; required: a class
    that neither sets one nor inherits one from a base such as ``ActiveStrategy`` is refused at
    registration), ``paper`` (the citation it implements), ``summary`` (one line), ``Options`` (a
    dataclass whose defaults are the paper's hyper-parameters; subclass :class:`TrainOptions`) and
    ``level``: ``"round"`` for a strategy that labels in rounds (``select``/``label``/``weight``), or
    ``"step"`` for one that pseudo-labels inside its ``loss`` at every optimizer step.

    An instance lives for one run (a grid builds one per run): per-run state may be kept on it.
    Besides the four hooks, a strategy may override the round control (:meth:`check`, :meth:`stop`,
    :meth:`query_count`), the shape of its epochs (:meth:`epoch_plan`) and the model it reports
    (:meth:`evaluated_model`).
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    level: ClassVar[Literal["round", "step"]] = "round"
    Options: ClassVar[type] = TrainOptions

    def __init__(self, **options: Any) -> None:
        self.options: Any = make_options(self.Options, options, f"strategy {self.name!r}")

    # -- round control -------------------------------------------------------------------
    def check(self, ctx: Context) -> None:
        """Called once before round 0 trains, with the data loaded and the starting labels in the
        ledger: raise ``OptionError`` for options that cannot work in this run. Default: nothing."""

    def stop(self, ctx: Context) -> str | None:
        """Why no further round starts (``None``: go on). Called before each round after the first."""
        return "single_round"

    def query_count(self, ctx: Context, n_candidates: int) -> int:
        """How many oracle labels this round's ``label`` must ask for, of the ids ``select`` returns
        (0: the strategy never queries); the engine refuses a round that asks for another number."""
        return 0

    def epoch_plan(self, ctx: Context) -> EpochPlan:
        """How the coming epoch (``ctx.epoch``) draws its batches; called at the start of each epoch.

        Default: one pass over the labeled set, no unlabeled batches.
        """
        return EpochPlan()

    # -- the four hooks ------------------------------------------------------------------
    def select(self, ctx: Context, pool: torch.Tensor) -> torch.Tensor:
        """Once per round: global ids, taken from the unlabeled ``pool``, that get a label now. Default: none."""
        return pool[:0]

    def label(self, ctx: Context, ids: torch.Tensor) -> Labels:
        """The labels of the selected ids. Default: ask the oracle (``ctx.oracle``)."""
        return ctx.oracle(ids)

    def weight(self, ctx: Context, labels: Labels) -> torch.Tensor:
        """Per-sample loss weights of ``labels``. Default: 1 each."""
        return torch.ones_like(labels.confidence)

    def loss(self, ctx: Context, step: Step) -> torch.Tensor | StepLoss:
        """Once per optimizer step: the loss of the ``step``'s batches, run in the model's training mode
        (the strategy makes its own forward passes with ``ctx.model``), with what it pseudo-labeled
        (:class:`StepLoss`; a bare tensor: nothing). Default: the weighted cross-entropy of the labeled
        batch (:func:`supervised_loss`)."""
        return supervised_loss(ctx, step.labeled)

    def evaluated_model(self, ctx: Context) -> nn.Module:
        """The model whose test accuracy the run reports (and that ``patience`` selects and the
        decision boundary shows). Default: the model trained, ``ctx.model``; a strategy may hand in
        another, such as its teacher (``ctx.teacher(name=...).model``)."""
        return ctx.model

    # -- description ---------------------------------------------------------------------
    def parts(self) -> tuple[Strategy, ...]:
        """The registered strategies this one is made of (itself, or a composite's parts)."""
        return (self,)

    def resolved_options(self) -> dict[str, Any]:
        """The options as the record reports them."""
        return options_dict(self.options)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, family, paper, summary and options, for listings."""
        return {"name": cls.name, "family": cls.family, "paper": cls.paper, "summary": cls.summary,
                "options": describe_options(cls.Options)}


def unfinished(cls: type[Strategy]) -> str | None:
    """Why strategy class ``cls`` cannot be instantiated, or None: the abstract methods it has yet to
    define, and the base class that declares them."""
    if not inspect.isabstract(cls):
        return None
    missing = sorted(cls.__abstractmethods__)  # type: ignore[attr-defined]
    owner = next(base for base in cls.__mro__[1:]
                 if any(getattr(vars(base).get(m), "__isabstractmethod__", False) for m in missing))
    return f"class {cls.__qualname__} does not define {', '.join(missing)} (abstract in {owner.__qualname__})"


FIRST_API_METHODS = ("transform", "unlabeled_batch_size")
"""Methods of the first plugin API's step phase, which Plugin API 1.0 replaced by ``loss(ctx, step)``
and ``epoch_plan``."""


def first_api(cls: type[Strategy]) -> str | None:
    """What in strategy class ``cls`` is written for the first plugin API (0.x), whose ``loss`` took
    ``(ctx, labeled, unlabeled)`` and whose step phase had ``transform`` and ``unlabeled_batch_size``;
    None for a class written for 1.0."""
    found = [f"{name}()" for name in FIRST_API_METHODS if callable(getattr(cls, name, None))]
    loss = inspect.signature(cls.loss)
    if len(loss.parameters) == 4 and "step" not in loss.parameters:
        found.append(f"loss{loss}".replace("(self, ", "("))
    return ", ".join(found) or None
