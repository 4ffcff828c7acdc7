"""The judge: a run's truth, and every figure computed from it.

The truth of a benchmark run is the hidden labels of its training set and the labels of its test
set. The judge holds them; the learner (the engine's loop and the strategy) holds none of them. By
default the two live in different processes (:mod:`sslzoo._engine.learner`): the learner's process
never receives a hidden label. What the learner may ask of the judge, and what it reports to it, is
:class:`Referee`, the whole interface between them:

* the oracle: a handle for one ``label`` call (:meth:`Referee.handle`), which answers only ids
  passed to that call, up to the round's ``query_count`` of them (the labels a run starts with come
  with its data: :meth:`Judge.starting_labels`);
* reports, which return nothing: the run's settings (:meth:`Referee.started`), pseudo-labels as
  they are given (:meth:`Referee.pseudo`), the model's classes of the test set at each evaluation
  (:meth:`Referee.entry`) and the record without its figures (:meth:`Referee.finish`). The judge
  turns them into the figures: test accuracy and its curve, the confusion counts, pseudo-label
  accuracy per difficulty bucket, the oracle labels counted from its own answers, and the decision
  boundary's verdicts (what is derived from these, such as per-class precision and recall or the
  active-learning metrics, is computed where it is reported);
* one figure the learner may read back, the test accuracy of some classes of the test set
  (:meth:`Referee.accuracy`), for ``patience`` (a documented model selection on the test set); the
  judge in its own process answers it at most once per epoch the run trains.

The observers' ``run_started``, ``round_ended`` and ``run_ended`` hooks are called by the judge,
with the figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch

from sslzoo._contract.labels import Labels
from sslzoo._contract.oracle import Oracle, OracleHandle
from sslzoo._contract.record import SCHEMA_VERSION, round_float
from sslzoo._ops.quality import BUCKETS, pseudo_summary

Record = dict[str, Any]
Notify = Callable[..., None]


class Referee(Protocol):
    """What the learner may ask of its run's judge and report to it (see the module's docstring)."""

    def handle(self, ids: torch.Tensor, allowed: int, where: str) -> OracleHandle:
        """The oracle of one ``label`` call on ``ids``, answering for ``allowed`` of them."""

    def started(self, run: dict[str, Any]) -> None:
        """The run's settings (strategy, dataset, model, seed, options, device), as observers see them."""

    def pseudo(self, tally: int, buckets: torch.Tensor, ids: torch.Tensor, targets: torch.Tensor) -> None:
        """Pseudo-labels ``targets`` of ``ids`` in difficulty ``buckets``, counted in tally ``tally``."""

    def accuracy(self, predicted: torch.Tensor) -> float:
        """The share of the test samples whose ``predicted`` class is their label (for ``patience``)."""

    def entry(self, entry: dict[str, Any], predicted: torch.Tensor, tally: dict[str, Any]) -> None:
        """A curve entry (``round``, ``epoch``, ``epochs``, maybe ``best_epoch``) with the model's
        ``predicted`` classes of the test set and the pseudo-labels counted so far (``tally``:
        ``key``, ``given`` per bucket, distinct ``ids``)."""

    def finish(self, record: Record) -> None:
        """The record without its figures (``None`` in their places), which the judge completes."""


class Judge:
    """The truth of one run: ``y_train`` (the hidden label of each training id; -1 where it has none)
    and ``y_test`` (the test set's labels), for ``num_classes`` classes. ``notify`` calls the
    observers' hooks (a registry's :meth:`~sslzoo._contract.registry.Registry.notify`)."""

    def __init__(self, y_train: torch.Tensor, y_test: torch.Tensor, num_classes: int,
                 notify: Notify | None = None) -> None:
        self._oracle = Oracle(y_train)
        self._y_test = y_test
        self.num_classes = num_classes
        self._notify = notify
        self._answered = torch.zeros(y_train.numel(), dtype=torch.bool, device=y_train.device)
        self._handles: list[OracleHandle] = []
        self._correct: dict[int, torch.Tensor] = {}
        self._run: dict[str, Any] = {}
        self._pseudo: dict[str, Any] = {}
        self.curve: list[dict[str, Any]] = []
        self.record: Record = {}

    # -- the oracle ---------------------------------------------------------------------------------
    def starting_labels(self, ids: torch.Tensor, counted: bool = True) -> Labels:
        """Oracle labels of the ids the run starts with (its validation set's too: ``counted`` says
        whether they count among the oracle labels)."""
        self._answered[ids] = counted
        return self._oracle.labels(ids)

    def handle(self, ids: torch.Tensor, allowed: int, where: str) -> OracleHandle:
        """The oracle of one ``label`` call on ``ids``, answering for ``allowed`` of them."""
        handle = self._oracle.handle(ids, allowed, where)
        self._handles.append(handle)
        return handle

    def oracle_labels(self) -> int:
        """How many distinct ids the oracle has answered for (the starting labels included)."""
        for handle in self._handles:
            self._answered[handle.answered()] = True
        self._handles.clear()
        return int(self._answered.sum())

    # -- the reports --------------------------------------------------------------------------------
    def started(self, run: dict[str, Any]) -> None:
        self._run = run
        self._observe("run_started", run=run)

    def pseudo(self, tally: int, buckets: torch.Tensor, ids: torch.Tensor, targets: torch.Tensor) -> None:
        right = self.correct(ids, targets)
        count = self._correct.get(tally)
        if count is None:
            count = self._correct[tally] = torch.zeros(len(BUCKETS), dtype=torch.long, device=right.device)
        count += torch.bincount(buckets.long(), weights=right.double(), minlength=len(BUCKETS)).long()

    def entry(self, entry: dict[str, Any], predicted: torch.Tensor, tally: dict[str, Any]) -> None:
        """Score the entry and append it, with its figures, to :attr:`curve`."""
        matrix = self.confusion(predicted)
        correct = self._correct.get(tally["key"])
        summary = pseudo_summary(tally["given"], correct.tolist() if correct is not None else [0] * len(BUCKETS),
                                 tally["ids"])
        accuracy = matrix.diagonal().sum().double() / max(1, predicted.numel())
        scored = {"round": entry["round"], "epoch": entry["epoch"], "epochs": entry["epochs"],
                  "labels": self.oracle_labels(),
                  "pseudo_labels": summary["count"],
                  "pseudo_ids": summary["ids"],
                  "pseudo_accuracy": summary["accuracy"],
                  "test_accuracy": round_float(float(accuracy))}
        end = entry["epoch"] == entry["epochs"]
        if end:  # a round's end: its counts per true and predicted class
            scored["confusion"] = matrix.tolist()
        if "best_epoch" in entry:
            scored["best_epoch"] = entry["best_epoch"]  # the epoch whose weights were kept
        self.curve.append(scored)
        if end:
            self._pseudo = summary
            self._observe("round_ended", run=self._run, entry=scored)

    def finish(self, record: Record) -> None:
        """Complete the record (:attr:`record`) with its schema (:data:`~sslzoo._contract.record.SCHEMA_VERSION`)
        and what the run measured: the figures of the curve's last entry, the curve, the pseudo-label
        summary and the decision boundary's verdicts. Figures derived from these (per-class precision
        and recall, the active-learning metrics) are computed where they are reported
        (:class:`sslzoo._results.record.Record`)."""
        last = self.curve[-1]
        figures = {"oracle_labels": last["labels"], "test_accuracy": last["test_accuracy"],
                   "confusion": last["confusion"], "curve": self.curve, "pseudo": self._pseudo}
        record = {"schema": SCHEMA_VERSION, **{key: figures.get(key, value) for key, value in record.items()}}
        boundary = record.get("boundary")
        if boundary is not None:
            device = self._y_test.device
            for part, labels in (("pseudo", "label"), ("pool", "pred")):
                points = boundary[part]
                points["correct"] = self.correct(torch.tensor(points["ids"], dtype=torch.long, device=device),
                                                 torch.tensor(points[labels], dtype=torch.long, device=device)).tolist()
        self.record = record
        self._observe("run_ended", record=record)

    def _observe(self, hook: str, **kwargs: Any) -> None:
        if self._notify is not None:
            self._notify(hook, **kwargs)

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
