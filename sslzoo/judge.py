"""The judge: a run's truth, and every figure computed from it.

The truth of a benchmark run is the hidden labels of its training set and the labels of its test
set. The judge holds them; the rest of the run (the engine's learner side and the strategy) holds
none of them and asks the judge instead:

* the oracle: a handle for one ``label`` call (:meth:`Judge.handle`), the labels a run starts with
  (:meth:`Judge.starting_labels`), and whether ``label`` returned the answers unchanged
  (:meth:`Judge.changed`);
* the figures: which of some ids' labels are right (:meth:`Judge.correct`: pseudo-label accuracy
  and the decision boundary's flags) and how the model's classes of the test set score
  (:meth:`Judge.confusion`, :meth:`Judge.accuracy`), from what the learner reports: ids with labels,
  and the predicted class of each test sample.

Everything the judge answers is what the figures of a record need, and nothing else.
"""

from __future__ import annotations

import torch

from sslzoo.oracle import Oracle, OracleHandle
from sslzoo.strategy import Labels


class Judge:
    """The truth of one run: ``y_train`` (the hidden label of each training id; -1 where it has none)
    and ``y_test`` (the test set's labels), for ``num_classes`` classes."""

    def __init__(self, y_train: torch.Tensor, y_test: torch.Tensor, num_classes: int) -> None:
        self._oracle = Oracle(y_train)
        self._y_test = y_test
        self.num_classes = num_classes

    # -- the oracle ---------------------------------------------------------------------------------
    def starting_labels(self, ids: torch.Tensor) -> Labels:
        """Oracle labels of the ids the run starts with."""
        return self._oracle.labels(ids)

    def handle(self, ids: torch.Tensor, allowed: int, where: str) -> OracleHandle:
        """The oracle of one ``label`` call on ``ids``, answering for ``allowed`` of them."""
        return self._oracle.handle(ids, allowed, where)

    def changed(self, ids: torch.Tensor, labels: torch.Tensor) -> int:
        """How many of ``labels``, given as the oracle's answers for ``ids``, are not its answers."""
        return int((~self.correct(ids, labels)).sum())

    # -- the figures --------------------------------------------------------------------------------
    def correct(self, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Whether each of ``labels`` is the true label of its id in ``ids`` (a boolean per id)."""
        return labels == self._oracle.reveal(ids)

    def scores_the_test_set(self) -> bool:
        """Whether the test set is there and every test sample has a label, so that it can be scored."""
        return self._y_test.numel() > 0 and bool((self._y_test >= 0).all())

    def confusion(self, predicted: torch.Tensor) -> torch.Tensor:
        """Counts (C, C) of the test samples by true class (rows) and ``predicted`` class (columns), on
        the device."""
        c = self.num_classes
        return torch.bincount(self._y_test * c + predicted, minlength=c * c).view(c, c)

    def accuracy(self, predicted: torch.Tensor) -> float:
        """The share of the test samples whose ``predicted`` class is their label."""
        return float((predicted == self._y_test).sum().double() / max(1, self._y_test.numel()))
