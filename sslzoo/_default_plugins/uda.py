"""UDA (Xie et al. 2020): consistency with sharpened weak-view targets, confidence masking, signal annealing.

Unsupervised data augmentation trains the strong view (RandAugment) of each unlabeled id towards the
model's prediction on its weak view, sharpened with a softmax temperature: the target is
``softmax(logits / T)`` (T = 0.4). Confidence masking keeps the ids whose weak view's top
probability reaches ``threshold`` (β = 0.8). The loss is FixMatch's with these soft targets
(:mod:`sslzoo._default_plugins.adaptive`): ``CE(labeled) + lambda_u · (1 / (mu·B)) · Σ_kept
CE(strong(u), target(u))``, lambda_u = 1, mu = 7, B = 64.

Training-signal annealing (TSA) drops from the labeled term the examples the model already fits:
a labeled id counts only while its predicted probability of its class is at most ``η_t = α_t (1 −
1/C) + 1/C``, α_t rising with the training progress t ∈ [0, 1) (the round's epochs) as ``t``
(linear), ``exp(5 (t − 1))`` (exp) or ``1 − exp(−5 t)`` (log); with ``tsa="none"`` (USB's setting
for images) every labeled id counts.

The port follows USB's ``UDA.train_step`` with its ``FixedThresholdingHook`` and ``TSA``. Where sslzoo
differs, besides the weak-view prediction of :mod:`sslzoo._default_plugins.adaptive`:

- the targets are sharpened by T, as the paper (and TorchSSL) write them; USB calls its
  pseudo-labeling hook on probabilities with ``softmax=False``, which returns them unsharpened and
  leaves its T unused;
- TSA masks a labeled id by its probability of its own class, as the paper and its code do; USB
  reads the top probability, which also drops a misclassified id the model is sure of;
- the masked labeled term is averaged over the whole labeled batch, as USB does (the paper's code
  divides by the kept ids);
- the weak view shifts the image (sslzoo's FixMatch weak view) where the paper's images are
  unaugmented; CTAugment is not used, UDA's own augmentation being RandAugment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.strategy import Batch, weighted_cross_entropy
from sslzoo._default_plugins.adaptive import USB_2022, AdaptiveMatch, AdaptiveOptions, Guess
from sslzoo.errors import OptionError

XIE_2020 = ("Qizhe Xie, Zihang Dai, Eduard Hovy, Minh-Thang Luong, Quoc V. Le. Unsupervised Data Augmentation for "
            "Consistency Training. Advances in Neural Information Processing Systems 33 (NeurIPS), 2020; reference "
            "code: " + USB_2022)

Schedule = Literal["none", "linear", "exp", "log"]


@dataclass
class UdaOptions(AdaptiveOptions):
    threshold: float = field(default=0.8, metadata={
        "min": 0.0, "max": 1.0, "help": "beta: train on an unlabeled id when its weak view's top probability is at "
                                        "least this (greater than 0)"})
    temperature: float = field(default=0.4, metadata={
        "min": 0.0, "help": "T: the targets are softmax(logits / T) of the weak view (greater than 0)"})
    tsa: Schedule = field(default="none", metadata={
        "help": "training-signal annealing: how the labeled ids' probability cap rises from 1/C to 1 over the "
                "round (none: no cap)"})

    def __post_init__(self) -> None:
        for name in ("threshold", "temperature"):
            if getattr(self, name) <= 0:
                raise OptionError(f"option {name}={getattr(self, name)} of strategy 'uda' is not allowed: it must "
                                  f"be greater than 0")


def tsa_threshold(schedule: Schedule, progress: float, num_classes: int) -> float:
    """``η_t = α_t (1 − 1/C) + 1/C`` at training ``progress`` t ∈ [0, 1] (1 with ``"none"``)."""
    if schedule == "none":
        return 1.0
    alpha = {"linear": progress, "exp": math.exp((progress - 1) * 5), "log": 1 - math.exp(-progress * 5)}[schedule]
    return alpha * (1 - 1 / num_classes) + 1 / num_classes


def sharpen_logits(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(log p / T)``: the softmax of the logits divided by T, from their probabilities ``p`` (the
    logits and ``log p`` differ by a constant per id, which the softmax does not see)."""
    return torch.softmax(probs.log() / temperature, dim=-1)


class Uda(AdaptiveMatch):
    """Xie et al. (2020): sharpened, confidence-masked weak-view targets for strong views, with TSA."""

    name = "uda"
    paper = XIE_2020
    summary = ("consistency of strong (RandAugment) views with sharpened, confidence-masked weak-view predictions; "
               "training-signal annealing")
    Options = UdaOptions

    def guess(self, ctx: Context, ids: torch.Tensor, probs: torch.Tensor) -> Guess:
        """The sharpened prediction, kept (weight 1) where the top probability reaches ``threshold``."""
        o = self.options
        return Guess(sharpen_logits(probs, o.temperature), (probs.max(dim=-1).values >= o.threshold).float())

    def supervised(self, ctx: Context, logits: torch.Tensor, labeled: Batch) -> torch.Tensor:
        """The weighted cross-entropy of the labeled ids whose probability of their class is at most η_t."""
        eta = tsa_threshold(self.options.tsa, ctx.progress / max(1, ctx.epochs), ctx.num_classes)
        weights = labeled.weights
        if eta < 1:
            with torch.no_grad():
                scores = logits.float()
                probs = scores.sigmoid() if ctx.activation == "sigmoid" else scores.softmax(dim=-1)
                own = probs.gather(1, labeled.targets.unsqueeze(1)).squeeze(1)
            weights = weights * (own <= eta)
        return weighted_cross_entropy(logits, labeled.targets, weights, ctx.activation)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(Uda)
