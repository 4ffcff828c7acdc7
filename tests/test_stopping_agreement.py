"""Agreement with small-text's stopping criteria: fed the same prediction sequences, sslzoo's criteria
fire at the round small-text's fire.

small-text's ``KappaAverage``, ``OverallUncertainty`` and ``ClassificationChange`` (small_text/
stopping_criteria/kappa.py, uncertainty.py and change.py at commit 9ffa298, April 2026) are ported
below with their formulas as they are: scikit-learn's ``cohen_kappa_score`` with small-text's
perfect-agreement case, scipy's ``entropy``, numpy's equality. Each sequence is one model's class
probabilities on a fixed set of ids, round after round, as small-text is given them (its
``indices_stopping`` the whole set); the predicted classes are their argmax. small-text has no
max-confidence criterion.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslzoo._contract.stopping import Predictions, StoppingCriterion
from sslzoo._default_plugins.stopping_criteria import (
    ClassificationChange,
    OverallUncertainty,
    StabilizingPredictions,
    cohens_kappa,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")


# -- small-text's criteria, ported -------------------------------------------------------------------

def adapted_cohen_kappa_score(y1, y2, labels):
    if np.array_equal(y1, y2):
        return 1.0
    return sklearn_metrics.cohen_kappa_score(y1, y2, labels=labels)


class KappaAverage:
    def __init__(self, num_classes, window_size=3, kappa=0.99):
        self.num_classes, self.window_size, self.kappa = num_classes, window_size, kappa
        self.last_predictions, self.kappa_history = None, []

    def stop(self, predictions=None, proba=None):
        if self.last_predictions is None:
            self.last_predictions = predictions
            return False
        cohens_kappa = adapted_cohen_kappa_score(predictions, self.last_predictions, np.arange(self.num_classes))
        self.kappa_history.append(cohens_kappa)
        self.last_predictions = predictions
        if len(self.kappa_history) < self.window_size:
            return False
        self.kappa_history = self.kappa_history[-self.window_size:]
        return bool(np.mean(self.kappa_history) >= self.kappa)


class SmallTextOverallUncertainty:
    def __init__(self, num_classes, threshold=0.05):
        self.num_classes, self.threshold = num_classes, threshold

    def stop(self, predictions=None, proba=None):
        indices_stopping = np.arange(proba.shape[0])
        prediction_entropy = np.apply_along_axis(lambda x: scipy_stats.entropy(x), 1, proba[indices_stopping])
        return bool(np.mean(prediction_entropy / np.log(self.num_classes)) < self.threshold)


class SmallTextClassificationChange:
    def __init__(self, num_classes, threshold=0.0):
        self.num_classes, self.threshold = num_classes, threshold
        self.last_predictions = None

    def stop(self, predictions=None, proba=None):
        if self.last_predictions is None:
            self.last_predictions = predictions
            return False
        unchanged = np.equal(self.last_predictions, predictions)
        self.last_predictions = predictions
        return bool(unchanged.sum() >= predictions.shape[0] * (1 - self.threshold))


# -- the sequences ----------------------------------------------------------------------------------

def converging(seed: int, classes: int, n: int = 200, rounds: int = 14) -> list[np.ndarray]:
    """Class probabilities of ``n`` ids over ``rounds`` rounds: a fixed opinion blurred by noise that
    shrinks and sharpens round after round (a model learning), with a relapse at a random round."""
    rng = np.random.default_rng(seed)
    opinion = rng.normal(size=(n, classes)) * 3
    relapse = int(rng.integers(2, rounds))
    out = []
    for r in range(rounds):
        noise = rng.normal(size=(n, classes)) * 2.0 * 0.6 ** r * (4 if r == relapse else 1)
        logits = (opinion + noise) * 0.5 * 1.3 ** r
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        out.append(p / p.sum(axis=1, keepdims=True))
    return out


def first_round(stop, probs: list[np.ndarray]) -> int | None:
    """The first round at which ``stop(predictions, proba)`` is true, or None."""
    for r, p in enumerate(probs):
        if stop(p.argmax(axis=1), p):
            return r
    return None


def sslzoo_round(criterion: StoppingCriterion, probs: list[np.ndarray]) -> int | None:
    ids = torch.arange(probs[0].shape[0])
    return first_round(lambda _, p: criterion.check(Predictions(0, ids, torch.from_numpy(p))) is not None, probs)


CASES = [(seed, classes) for seed in range(4) for classes in (2, 3, 10)]


def agree(cls: type[StoppingCriterion], given: dict[str, str], theirs) -> list[int | None]:
    rounds = []
    for seed, classes in CASES:
        probs = converging(seed, classes)
        mine, small_text = sslzoo_round(cls(**given), probs), first_round(theirs(classes).stop, probs)
        assert mine == small_text, (seed, classes, mine, small_text)
        rounds.append(mine)
    assert len({r for r in rounds if r is not None}) >= 2, f"the sequences fire {cls.name} at one round only: {rounds}"
    return rounds


# -- the tests ----------------------------------------------------------------------------------------

def test_cohens_kappa_is_scikit_learns_with_small_texts_perfect_agreement():
    rng = np.random.default_rng(0)
    for classes in (2, 3, 7):
        for _ in range(20):
            a = rng.integers(0, classes, 50)
            b = np.where(rng.random(50) < 0.7, a, rng.integers(0, classes, 50))
            expected = adapted_cohen_kappa_score(b, a, np.arange(classes))
            assert cohens_kappa(torch.from_numpy(b), torch.from_numpy(a), classes) == pytest.approx(expected, abs=1e-12)
    ones = torch.ones(5, dtype=torch.long)
    assert cohens_kappa(ones, ones, 2) == 1.0


@pytest.mark.parametrize("kappa, window", [(0.99, 3), (0.9, 3), (0.95, 2), (0.8, 1)])
def test_stabilizing_predictions_fires_when_kappa_average_does(kappa, window):
    agree(StabilizingPredictions, {"kappa": str(kappa), "window": str(window)},
          lambda classes: KappaAverage(classes, window_size=window, kappa=kappa))


@pytest.mark.parametrize("threshold", [0.05, 0.1, 0.2])
def test_overall_uncertainty_fires_when_small_texts_does(threshold):
    agree(OverallUncertainty, {"threshold": str(threshold)},
          lambda classes: SmallTextOverallUncertainty(classes, threshold=threshold))


@pytest.mark.parametrize("threshold", [0.0, 0.01, 0.05])
def test_classification_change_fires_when_small_texts_does(threshold):
    agree(ClassificationChange, {"threshold": str(threshold)},
          lambda classes: SmallTextClassificationChange(classes, threshold=threshold))


def test_small_texts_own_examples_fire_at_the_same_round():
    """The sequences of small-text's unit tests (tests/unit/small_text/stopping_criteria)."""
    seq = [np.eye(2)[[0, 1, 1, 0]], *[np.eye(2)[[0, 1, 1, 1]]] * 3]
    assert (sslzoo_round(StabilizingPredictions(kappa="0.7"), seq)
            == first_round(KappaAverage(2, kappa=0.7).stop, seq) == 3)
    seq = [np.eye(2)[[0, 1, 1, 0]], np.eye(2)[[1, 0, 1, 0]], np.eye(2)[[0, 1, 0, 1]], np.eye(2)[[0, 1, 1, 1]]]
    assert (sslzoo_round(ClassificationChange(threshold="0.25"), seq)
            == first_round(SmallTextClassificationChange(2, threshold=0.25).stop, seq) == 3)
    seq = [np.array([[0, 0.5, 0.5, 0], [0, 1, 0, 0], [0, 0, 1, 0]]), np.eye(4)[[1, 2, 0]]]
    assert sslzoo_round(OverallUncertainty(), seq) == first_round(SmallTextOverallUncertainty(4).stop, seq) == 1
