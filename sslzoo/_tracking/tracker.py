"""The trackers a grid logs to, by name, and :class:`Tracking`, which keeps a failing one from costing
the grid anything.

A tracker is opened when the grid's runs are planned, before the first one trains: an extra that is
not installed or a server that does not answer is a :class:`~sslzoo.errors.TrackingError` then, and
nothing has run. Each finished record is then logged, after the bench's store has it on disk; a
tracker that fails there is one :class:`~sslzoo.errors.TrackingWarning` and logs nothing more, and the
grid goes on.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sslzoo._tracking.mlflow_runs import MLflowTracker
from sslzoo._tracking.tensorboard_events import DEFAULT_DIR, TensorBoardTracker
from sslzoo.errors import OptionError, TrackingWarning

TRACKERS = ("mlflow", "tensorboard")
"""The trackers that ship with sslzoo (``--track NAME``)."""


class Tracker(Protocol):
    """Where a grid's records go besides its store."""

    name: str

    def open(self, grid: Mapping[str, Any]) -> None:
        """Before the first run: check what the tracker needs and start the grid (``dataset``,
        ``preset``, ``strategies``, ``seeds``, ``runs``); a :class:`~sslzoo.errors.TrackingError` if it cannot."""

    def log(self, record: Mapping[str, Any]) -> None:
        """One finished run's record."""

    def close(self, finished: bool) -> None:
        """The grid ended, every run done (``finished``) or stopped early."""


class Tracking:
    """The grid's trackers: every one opened before the first run, each record logged to those that
    have not failed, and a failure one warning, never an error."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)

    def open(self, grid: Mapping[str, Any]) -> None:
        """Open every tracker; when one cannot, those already open are closed and its error raised."""
        opened: list[Tracker] = []
        try:
            for tracker in self.trackers:
                tracker.open(grid)
                opened.append(tracker)
        except BaseException:
            for tracker in opened:
                self._guard(tracker, lambda t: t.close(False))
            self.trackers = []
            raise

    def log(self, record: Mapping[str, Any]) -> None:
        for tracker in list(self.trackers):
            self._guard(tracker, lambda t: t.log(record))

    def close(self, finished: bool) -> None:
        for tracker in list(self.trackers):
            self._guard(tracker, lambda t: t.close(finished))
        self.trackers = []

    def _guard(self, tracker: Tracker, call: Any) -> None:
        try:
            call(tracker)
        except Exception as exc:  # whatever the tracker's library raises: the grid and its records go on
            if tracker in self.trackers:
                self.trackers.remove(tracker)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            warnings.warn(f"--track {tracker.name} failed ({type(exc).__name__}: {first}); it logs no more runs of "
                          f"this grid, and every record is kept", TrackingWarning, stacklevel=2)


def make_tracking(names: str | Sequence[str], tensorboard_dir: str | os.PathLike[str] | None = None,
                  figures: Callable[[Sequence[Mapping[str, Any]], Path], None] | None = None) -> Tracking:
    """The trackers ``names`` (of :data:`TRACKERS`), TensorBoard's writing under ``tensorboard_dir``
    (default ``runs``), MLflow's attaching to the grid's parent run what ``figures(records, folder)``
    writes (``sslzoo bench``: the report); an :class:`~sslzoo.errors.OptionError` for another name, or
    for a directory without TensorBoard."""
    names = [names] if isinstance(names, str) else list(names)
    unknown = [name for name in names if name not in TRACKERS]
    if unknown:
        raise OptionError(f"--track {unknown[0]!r} is not a tracker: use {' or '.join(TRACKERS)}")
    if tensorboard_dir is not None and "tensorboard" not in names:
        raise OptionError("--tensorboard-dir needs --track tensorboard")
    made: list[Tracker] = []
    for name in dict.fromkeys(names):
        made.append(MLflowTracker(figures) if name == "mlflow" else TensorBoardTracker(tensorboard_dir or DEFAULT_DIR))
    return Tracking(made)
