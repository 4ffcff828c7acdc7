"""Built-in stopping criteria (:mod:`sslzoo._contract.stopping`), registered like third-party ones:
``stabilizing_predictions``, ``overall_uncertainty``, ``max_confidence``, ``classification_change``.

Each fires at the round small-text's criterion of the same rule fires on the same predictions
(``KappaAverage``, ``OverallUncertainty``, ``ClassificationChange``; tests/test_stopping_agreement.py),
with the differences each docstring states. small-text has no max-confidence criterion.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.stopping import Predictions, StoppingCriterion, StoppingOptions, normalized_entropy
from sslzoo.errors import OptionError

BLOODGOOD_2009 = ("Michael Bloodgood, K. Vijay-Shanker. A Method for Stopping Active Learning Based on Stabilizing "
                  "Predictions and the Need for User-Adjustable Stopping. CoNLL 2009")
ZHU_2008 = ("Jingbo Zhu, Huizhen Wang, Eduard Hovy. Learning a Stopping Criterion for Active Learning for Word Sense "
            "Disambiguation and Text Classification. IJCNLP 2008")
ZHU_2008_MULTI = ("Jingbo Zhu, Huizhen Wang, Eduard Hovy. Multi-criteria-based Strategy to Stop Active Learning for "
                  "Data Annotation. COLING 2008")


def cohens_kappa(a: torch.Tensor, b: torch.Tensor, num_classes: int) -> float:
    """Cohen's kappa between two labelings of the same ids, (p_o - p_e) / (1 - p_e); 1 when they are
    equal (small-text's ``_adapted_cohen_kappa_score``: where both give one class throughout, p_e = 1
    and the formula is 0/0)."""
    if torch.equal(a, b):
        return 1.0
    n = a.numel()
    confusion = torch.bincount(a * num_classes + b, minlength=num_classes**2).reshape(num_classes, num_classes)
    confusion = confusion.double()
    observed = confusion.trace() / n
    expected = (confusion.sum(dim=1) * confusion.sum(dim=0)).sum() / n**2
    return float((observed - expected) / (1 - expected))


@dataclass
class StabilizingOptions(StoppingOptions):
    """Bloodgood & Vijay-Shanker 2009's defaults: kappa 0.99 averaged over a window of 3, a stop set."""

    stop_set: int = field(default=2000, metadata={
        "min": 0, "help": "the ids watched: N ids drawn at random from the pool at the first check with the run's "
                          "seed (all of it when smaller), the same every round; 0, the unlabeled pool after each "
                          "round"})
    kappa: float = field(default=0.99, metadata={
        "min": -1.0, "max": 1.0, "help": "stop when the mean agreement of the last window rounds reaches this"})
    window: int = field(default=3, metadata={
        "min": 1, "help": "agreements (each between a round's model and the one before) averaged"})


class StabilizingPredictions(StoppingCriterion):
    """Stop when the models' predictions on the stop set have stabilized: Cohen's kappa between each
    round's predictions and the previous round's, averaged over the last ``window`` (3) agreements,
    reaches ``kappa`` (0.99). The first agreement comes after round 1, so it fires after round
    ``window`` at the earliest (Bloodgood & Vijay-Shanker 2009, section 3; small-text's
    ``KappaAverage``). The stop set is ``stop_set`` (2000) ids of the pool at the first check, the
    same ids every round, labeled or not later: it needs no label. Kappa counts every class of the
    dataset, as small-text's ``labels=range(num_classes)`` does."""

    name = "stabilizing_predictions"
    paper = BLOODGOOD_2009
    summary = "stop when Cohen's kappa between consecutive models' predictions on a stop set, averaged over 3, ≥ 0.99"
    Options: ClassVar[type] = StabilizingOptions
    options: StabilizingOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.previous: torch.Tensor | None = None
        self.agreements: deque[float] = deque(maxlen=self.options.window)

    def check(self, seen: Predictions) -> str | None:
        labels, previous = seen.labels, self.previous
        self.previous = labels
        if previous is None:
            return None
        self.agreements.append(cohens_kappa(labels, previous, seen.probs.shape[1]))
        mean = sum(self.agreements) / len(self.agreements)
        if len(self.agreements) < self.options.window or mean < self.options.kappa:
            return None
        return (f"mean Cohen's kappa {mean:.4f} of the last {self.options.window} rounds' predictions on "
                f"{labels.numel()} ids ≥ {self.options.kappa}")


@dataclass
class EntropyThresholdOptions(StoppingOptions):
    """A threshold on the normalized entropy (entropy / log C, in [0, 1])."""

    threshold: float = field(default=0.05, metadata={
        "min": 0.0, "max": 1.0, "help": "stop when the normalized entropy (entropy / log C) is below this (< 1)"})


class EntropyThreshold(StoppingCriterion):
    """A criterion on the normalized entropy: its ``threshold`` must be below 1, as small-text's."""

    options: EntropyThresholdOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options.threshold >= 1:
            raise OptionError(f"option threshold={self.options.threshold} of stopping criterion {self.name!r} is not "
                              f"allowed: it must be below 1 (a normalized entropy is at most 1)")


class OverallUncertainty(EntropyThreshold):
    """Stop when the model is sure of the unlabeled examples on average: their mean normalized
    entropy (entropy / log C) is below ``threshold`` (Zhu, Wang & Hovy 2008, overall-uncertainty;
    small-text's ``OverallUncertainty``). The threshold is small-text's default, 0.05, on the
    normalized entropy (the paper tunes its threshold per task). It watches the unlabeled pool
    after each round (``stop_set`` 0), as the paper does and small-text does when given the pool's
    indices."""

    name = "overall_uncertainty"
    paper = ZHU_2008
    summary = "stop when the mean normalized entropy of the unlabeled pool's predictions is below 0.05"
    Options: ClassVar[type] = EntropyThresholdOptions
    options: EntropyThresholdOptions

    def check(self, seen: Predictions) -> str | None:
        mean = float(normalized_entropy(seen.probs).mean())
        if mean >= self.options.threshold:
            return None
        return f"mean normalized entropy {mean:.4f} on {seen.ids.numel()} ids < {self.options.threshold}"


@dataclass
class MaxConfidenceOptions(EntropyThresholdOptions):
    """Zhu et al. 2008's max-confidence threshold, 0.001."""

    threshold: float = field(default=0.001, metadata={
        "min": 0.0, "max": 1.0,
        "help": "stop when the largest normalized entropy (entropy / log C) is below this (< 1)"})


class MaxConfidence(EntropyThreshold):
    """Stop when the model is sure even of the unlabeled example it is least sure of: the largest
    normalized entropy (entropy / log C) among the unlabeled pool's predictions is below ``threshold``
    (0.001; Zhu, Wang & Hovy 2008, max-confidence). The paper checks the example that uncertainty
    sampling selects, the most uncertain one; this checks the most uncertain one whatever the
    strategy selects, so it works with any active learner, and it normalizes the entropy by log C
    as ``overall_uncertainty`` does. small-text has no such criterion."""

    name = "max_confidence"
    paper = ZHU_2008
    summary = "stop when the largest normalized entropy of the unlabeled pool's predictions is below 0.001"
    Options: ClassVar[type] = MaxConfidenceOptions
    options: MaxConfidenceOptions

    def check(self, seen: Predictions) -> str | None:
        top = float(normalized_entropy(seen.probs).max())
        if top >= self.options.threshold:
            return None
        return f"largest normalized entropy {top:.6f} on {seen.ids.numel()} ids < {self.options.threshold}"


@dataclass
class ChangeOptions(StoppingOptions):
    """Zhu et al. 2008's rule (no change) by default; small-text's tolerance as an option."""

    threshold: float = field(default=0.0, metadata={
        "min": 0.0, "max": 1.0, "help": "the fraction of the watched ids whose predicted class may change (0: none, "
                                        "the paper's rule)"})


class ClassificationChange(StoppingCriterion):
    """Stop when no unlabeled example's predicted class changes between two consecutive rounds (Zhu,
    Wang & Hovy 2008, classification-change, the criterion their COLING paper proposes; small-text's
    ``ClassificationChange``, whose ``threshold`` lets that fraction of the ids change). It fires
    after round 1 at the earliest. Watching the pool (``stop_set`` 0, the paper's unlabeled
    examples), it compares the ids unlabeled in both rounds: those queried in between have left the
    pool; small-text compares a fixed set and refuses one whose size changes."""

    name = "classification_change"
    paper = ZHU_2008_MULTI
    summary = "stop when no unlabeled pool id's predicted class changes between consecutive rounds"
    Options: ClassVar[type] = ChangeOptions
    options: ChangeOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None  # ids sorted, their predicted classes

    def check(self, seen: Predictions) -> str | None:
        order = seen.ids.argsort()
        ids, labels = seen.ids[order], seen.labels[order]
        previous, self.previous = self.previous, (ids, labels)
        if previous is None:
            return None
        before_ids, before = previous
        common = torch.isin(ids, before_ids)
        if not bool(common.any()):
            return None
        was = before[torch.searchsorted(before_ids, ids[common])]
        changed, n = int((was != labels[common]).sum()), int(common.sum())
        if n - changed < n * (1 - self.options.threshold):
            return None
        return (f"{changed} of {n} ids changed their predicted class since the last round (a fraction "
                f"{self.options.threshold} may)")


BUILT_IN = (StabilizingPredictions, OverallUncertainty, MaxConfidence, ClassificationChange)


@hookimpl
def register_stopping_criteria(register: Callable[[type], None]) -> None:
    for cls in BUILT_IN:
        register(cls)
