"""SimMatch (Zheng et al. 2022): FixMatch's pseudo-labels, smoothed by and matched to a labeled memory bank.

Each step joins ``mu`` × ``batch_size`` unlabeled ids to a labeled batch of ``batch_size``. The
memory bank holds, per labeled id, an L2-normalised embedding and its label. For each unlabeled id
the model (dropout off, no gradient) predicts the weak view, giving class probabilities ``p`` and
an embedding ``w``:

1. ``p`` is aligned towards the uniform distribution (distribution alignment with a queue:
   ``p · u / mean(queue)``, renormalised, the queue holding the mean prediction of the last
   ``da_len`` batches, empty rows counting as zeros);
2. the *instance similarities* ``q = softmax(w · bank / T)`` over the bank's ids, and the teacher
   ``q̂ ∝ q · p[label of each bank id]`` (the similarities scaled by the class probability of each
   bank id's label, renormalised: labeled propagation, the paper's eq. 6);
3. the *unfolded* class target ``p̂ = alpha · p + (1 − alpha) · Σ_{bank ids of class c} q`` (the
   similarities aggregated by label, eq. 7), pseudo-labeled where its top probability reaches
   ``threshold``.

The loss is

    CE(labeled) + lambda_u · (1 / (mu·B)) · Σ_{max p̂ ≥ tau} CE(strong(u), p̂)
                + lambda_in · mean_u CE(softmax(s · bank / T), q̂)

with ``s`` the strong view's embedding (trained, with gradient; ``p̂`` is a soft target). In the
first epoch of a round the instance loss is 0 and ``p̂ = p`` (the bank is being filled: an epoch is
one pass over the labeled set). After the step, the bank rows of the labeled batch move towards the
embeddings of their weak views in the training pass, ``row ← normalise(m · row + (1 − m) · h)``
with ``m = bank_momentum``. The run reports an exponential moving average of the weights (0.999),
as FixMatch.

The port follows USB's ``SimMatch.train_step`` and ``update_bank``
(``semilearn/algorithms/simmatch/simmatch.py``), ``DistAlignQueueHook`` (uniform target) and
``FixedThresholdingHook``, at USB commit 1ef4cbebcc0b368158315aeb425053858cf6c845, with the
defaults of its CIFAR/SVHN/STL-10 configurations (T = 0.1, ``da_len`` = 32, ``smoothing_alpha`` =
0.9, tau = 0.95, the bank moved with 0.7 by the training pass's labeled embeddings, USB's mode for
these datasets). Where sslzoo differs:

- **no projection head**: the embedding is the input of the model's embedding layer (its last
  ``nn.Linear``, see :mod:`sslzoo._ops.embedding`), L2-normalised. USB adds a 2-layer MLP head
  (128-d, three averaged heads with ``use_epass``) to the backbone; a strategy cannot add trained
  parameters to the model the engine builds and optimises, so the head is left out and the
  features the classifier sees are matched instead;
- the weak view's probabilities and embeddings come from a pass with dropout off and no gradient,
  as every sslzoo pseudo-labeler predicts; USB takes them from the training pass (dropout and batch
  norm in training mode);
- the bank has one row per id the labeled batches draw from (the ledger's oracle- and
  pseudo-labeled ids), as USB's has one per labeled example (``K = lb_dest_len``): so it has no
  size option. Its rows start as random unit vectors drawn from the run's generator with the
  ledger's labels (USB: label 0 until written; neither is read in the first epoch). It is rebuilt
  each round for the round's labeled ids, keeping the rows of ids it had while the model is the
  same, and starts afresh with a new model, as the alignment queue does;
- USB's update ``F.normalize(0.7 · bank[:, idx] + 0.3 · k.T)`` normalises the (D, b) slice along its
  default ``dim=1``, across the batch, so the written columns are not unit vectors (its initial
  ones are); sslzoo normalises each embedding, as the paper's bank of normalised embeddings is;
- "the first epoch" is that of each round (USB: of the run, 1/1024 of its training); the instance
  loss reads ``log_softmax`` where USB reads ``log(softmax)``, and an embedding of norm 0 stays 0
  (USB's would be NaN); the similarities are computed in float32 outside autocast.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import PseudoLabels, Step, StepLoss
from sslzoo._default_plugins.adaptive import USB_2022, AdaptiveOptions, consistency_loss
from sslzoo._default_plugins.fixmatch import FixMatch
from sslzoo._ops.embedding import embedding_layer
from sslzoo._ops.inference import eval_mode
from sslzoo.errors import OptionError

ZHENG_2022 = ("Mingkai Zheng, Shan You, Lang Huang, Fei Wang, Chen Qian, Chang Xu. SimMatch: Semi-supervised "
              "Learning with Similarity Matching. IEEE/CVF Conference on Computer Vision and Pattern Recognition "
              "(CVPR), 2022; reference code: " + USB_2022)


@dataclass
class SimMatchOptions(AdaptiveOptions):
    lambda_u: float = field(default=1.0, metadata={
        "min": 0.0, "help": "weight of the pseudo-label loss (greater than 0)"})
    threshold: float = field(default=0.95, metadata={
        "min": 0.0, "max": 1.0, "help": "tau: pseudo-label an unlabeled id when the top probability of its unfolded "
                                        "target reaches this (greater than 0)"})
    temperature: float = field(default=0.1, metadata={
        "min": 0.0, "help": "T: temperature of the similarities to the bank (greater than 0)"})
    lambda_in: float = field(default=1.0, metadata={
        "min": 0.0, "help": "weight of the instance (similarity) loss (greater than 0)"})
    smoothing_alpha: float = field(default=0.9, metadata={
        "min": 0.0, "max": 1.0, "help": "alpha: the unfolded target's share of the class prediction (1: no "
                                        "smoothing by the bank's labels)"})
    da_len: int = field(default=32, metadata={
        "min": 1, "help": "distribution alignment: batches of mean predictions in the queue"})
    bank_momentum: float = field(default=0.7, metadata={
        "min": 0.0, "max": 1.0, "help": "a bank row keeps this share of itself when its id is trained (less than 1)"})

    def __post_init__(self) -> None:
        for key in ("threshold", "temperature", "lambda_u", "lambda_in"):
            value = getattr(self, key)
            if value <= 0:
                raise OptionError(f"option {key}={value} of strategy 'simmatch' is not allowed: it must be greater "
                                  f"than 0")
        if self.bank_momentum >= 1:
            raise OptionError(f"option bank_momentum={self.bank_momentum} of strategy 'simmatch' is not allowed: it "
                              f"must be less than 1 (1 never writes the bank)")


class AlignmentQueue:
    """Distribution alignment towards the uniform distribution by the mean of a queue of the last
    ``length`` batches' mean predictions, its empty rows zeros (USB's ``DistAlignQueueHook``)."""

    def __init__(self, num_classes: int, length: int, device: torch.device) -> None:
        self.p_target = torch.full((num_classes,), 1.0 / num_classes, device=device)
        self.p_model = torch.zeros(length, num_classes, device=device)
        self.pointer = 0

    def align(self, probs: torch.Tensor) -> torch.Tensor:
        """Put the mean of ``probs`` in the queue, then align them."""
        self.p_model[self.pointer] = probs.mean(dim=0)
        self.pointer = (self.pointer + 1) % self.p_model.shape[0]
        aligned = probs * (self.p_target + 1e-6) / (self.p_model.mean(dim=0) + 1e-6)
        return aligned / aligned.sum(dim=-1, keepdim=True)


class LabeledBank:
    """One L2-normalised embedding (``features``, K × D) and label (``labels``) per id of ``ids``;
    ``row`` maps a global id to its row (-1: none)."""

    def __init__(self, ids: torch.Tensor, labels: torch.Tensor, dim: int, n_ids: int, generator: torch.Generator,
                 previous: LabeledBank | None = None) -> None:
        device = labels.device
        features = torch.randn(ids.numel(), dim, generator=generator, device=generator.device).to(device)
        self.features = F.normalize(features, dim=1)
        self.labels = labels.clone()
        self.row = torch.full((n_ids,), -1, dtype=torch.long, device=device)
        self.row[ids] = torch.arange(ids.numel(), device=device)
        if previous is not None and previous.features.shape[1] == dim:
            known = previous.row[ids]
            kept = previous.features[known.clamp(min=0)]
            self.features = torch.where((known >= 0).unsqueeze(1), kept, self.features)

    def update(self, ids: torch.Tensor, embeddings: torch.Tensor, momentum: float) -> None:
        """Move the rows of ``ids`` towards their new ``embeddings`` (normalised), out of place (the
        step's loss still holds the old bank)."""
        rows = self.row[ids]
        moved = F.normalize(momentum * self.features[rows] + (1 - momentum) * embeddings.float(), dim=1)
        self.features = self.features.index_copy(0, rows, moved)


def similarity_match(probs: torch.Tensor, weak: torch.Tensor, strong: torch.Tensor, bank: LabeledBank,
                     temperature: float, alpha: float, num_classes: int,
                     filling: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The unfolded class targets ``p̂`` (k, C) of the unlabeled ids and the instance loss, from their
    aligned weak-view probabilities ``probs``, weak-view embeddings ``weak`` (no gradient) and
    strong-view embeddings ``strong`` (with gradient); while ``filling`` the bank, ``probs`` and 0."""
    if filling:
        return probs, strong.sum() * 0.0
    labels = bank.labels.expand(probs.shape[0], -1)
    similarity = torch.softmax(weak @ bank.features.T / temperature, dim=1)
    teacher = similarity * probs.gather(1, labels)
    teacher = teacher / teacher.sum(dim=1, keepdim=True)
    aggregated = torch.zeros(probs.shape[0], num_classes, device=probs.device).scatter_add(1, labels, similarity)
    targets = probs * alpha + aggregated * (1 - alpha)
    student = F.log_softmax(strong @ bank.features.T / temperature, dim=1)
    return targets, -(teacher * student).sum(dim=1).mean()


@contextlib.contextmanager
def embedded(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """While active, ``seen["h"]`` is the input of the model's embedding layer in its latest forward pass."""
    seen: dict[str, torch.Tensor] = {}

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen["h"] = args[0]

    handle = embedding_layer(model).register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def normalised(h: torch.Tensor) -> torch.Tensor:
    """Embeddings as L2-normalised float32 rows."""
    return F.normalize(h.flatten(1).float(), dim=1)


class SimMatch(FixMatch):
    """Zheng et al. (2022): FixMatch's targets unfolded by similarities to a labeled memory bank, whose
    label-scaled similarities are in turn the targets of the strong view's similarities."""

    name = "simmatch"
    paper = ZHENG_2022
    summary = ("FixMatch with pseudo-labels smoothed by similarities to a labeled memory bank and an instance loss "
               "matching the strong view's similarities to them")
    Options: ClassVar[type] = SimMatchOptions  # type: ignore[assignment]  # FixMatch's, with the bank's
    alignment: AlignmentQueue  # of the current model, made by follow
    bank: LabeledBank

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._model: weakref.ref[nn.Module] | None = None
        self._round = -1

    def follow(self, ctx: Context, dim: int) -> tuple[AlignmentQueue, LabeledBank]:
        """The alignment queue and the bank of the current model: afresh for a new model, the bank's rows
        for the labeled ids of each round."""
        fresh = self._model is None or self._model() is not ctx.model
        if fresh or ctx.round != self._round:
            if fresh:
                self.alignment = AlignmentQueue(ctx.num_classes, self.options.da_len, ctx.device)
            ids = ctx.ledger.train()
            self.bank = LabeledBank(ids, ctx.ledger.target[ids], dim, ctx.x.shape[0], ctx.generator,
                                    None if fresh else self.bank)
            self._model, self._round = weakref.ref(ctx.model), ctx.round
        return self.alignment, self.bank

    def loss(self, ctx: Context, step: Step) -> StepLoss:
        """``CE(weak(labeled)) + lambda_u · Σ_{max p̂ ≥ tau} CE(strong(u), p̂) / (mu·B) + lambda_in ·
        L_in``, then the labeled batch's bank rows move towards its embeddings."""
        o = self.options
        labeled, unlabeled = step.labeled, step.unlabeled
        if unlabeled is None:
            return self.labeled_only(ctx, labeled)
        with torch.no_grad(), eval_mode(ctx.model), embedded(ctx.model) as seen:
            probs = torch.softmax(ctx.model(self.weak(ctx, ctx.x[unlabeled])).float(), dim=-1)
            weak = normalised(seen["h"])
        alignment, bank = self.follow(ctx, weak.shape[1])
        n = labeled.ids.numel()
        strong = self.strong(ctx, self.weak(ctx, ctx.x[unlabeled]))
        with embedded(ctx.model) as seen:
            logits = ctx.model(torch.cat([self.weak(ctx, labeled.x), strong]))
            embeddings = normalised(seen["h"])
        with torch.autocast(ctx.device.type, enabled=False):
            targets, instance = similarity_match(alignment.align(probs), weak, embeddings[n:], bank, o.temperature,
                                                 o.smoothing_alpha, ctx.num_classes, filling=ctx.epoch == 0)
        confidence, classes = targets.max(dim=1)
        mask = confidence >= o.threshold
        loss = (self.supervised(ctx, logits[:n], labeled)
                + o.lambda_u * consistency_loss(logits[n:], targets, mask.float(), unlabeled.numel())
                + o.lambda_in * instance)
        bank.update(labeled.ids, embeddings[:n].detach(), o.bank_momentum)
        self.follow_average(ctx)
        return StepLoss(loss, PseudoLabels(unlabeled, classes, confidence, mask))


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(SimMatch)
