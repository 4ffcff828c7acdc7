"""``--track mlflow``: each run an MLflow run, a grid their parent run.

The tracking URI is MLflow's own setting (``MLFLOW_TRACKING_URI``; unset: MLflow's default, a local
store in the current directory), the experiment ``MLFLOW_EXPERIMENT_NAME`` (unset: ``sslzoo``).
A grid opens one parent run (its parameters: dataset, preset, strategies, seeds, runs) before the
first run trains; each finished record becomes a child run (MLflow's ``mlflow.parentRunId`` tag)
named ``STRATEGY L labels seed N``, with

* parameters: strategy, family, dataset, seed, preset, model, starting labels, device, each
  ``option.KEY`` and ``dataset_option.KEY`` (:func:`sslzoo._tracking.series.params`);
* metrics: ``test_accuracy`` and ``pseudo_accuracy`` by epoch (the step: epochs trained since the
  run began), ``test_accuracy_by_labels`` (the step: oracle labels at each round's end), and the
  final ``test_accuracy``, ``oracle_labels`` and ``wall_seconds`` (step 0);
* tags: the machine the run ran on (``machine.cpu``, ``machine.cpu_capability``, ...);
* the record itself as the artifact ``record.json``.

MLflow's links to each run it ends go to stderr. When the grid ends the parent run gets every record
it logged as ``records.jsonl`` and ends ``FINISHED`` (``FAILED`` when the grid stopped early). A
server that does not answer when the grid opens is a :class:`~sslzoo.errors.TrackingError` before
any run; one that fails later is the grid's :class:`~sslzoo.errors.TrackingWarning`
(:class:`sslzoo._tracking.tracker.Tracking`), after MLflow's own retries
(``MLFLOW_HTTP_REQUEST_MAX_RETRIES``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sslzoo._tracking.series import epoch_points, label_points, params, run_name, safe_name
from sslzoo.errors import TrackingError

MISSING = "--track mlflow needs MLflow, which is not installed: pip install 'sslzoo[mlflow]'"
EXPERIMENT = "sslzoo"
"""The experiment a grid goes to when ``MLFLOW_EXPERIMENT_NAME`` is not set."""
HEALTH_TIMEOUT = 5.0
"""Seconds a tracking server has to answer ``/health`` when a grid opens."""
_BATCH = 100
"""Parameters (and tags) per request: MLflow takes at most 100, and 1000 metrics."""


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[start:start + size] for start in range(0, len(items), size)] or [[]]


class MLflowTracker:
    """The grid's runs in MLflow (see the module's docstring)."""

    name = "mlflow"

    def __init__(self, figures: Callable[[Sequence[Mapping[str, Any]], Path], None] | None = None) -> None:
        self.figures = figures
        self.client: Any = None
        self.parent: str | None = None
        self.experiment: str | None = None
        self.records: list[Mapping[str, Any]] = []

    def open(self, grid: Mapping[str, Any]) -> None:
        """Import MLflow, check that its tracking server answers and open the grid's parent run."""
        try:
            import mlflow
            from mlflow import MlflowClient
        except ImportError:
            raise TrackingError(MISSING) from None
        uri = mlflow.get_tracking_uri()
        if uri.startswith(("http://", "https://")):
            _check_server(uri)
        try:
            self.client = MlflowClient()
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
            found = self.client.get_experiment_by_name(name)
            self.experiment = found.experiment_id if found is not None else self.client.create_experiment(name)
            parent = self.client.create_run(self.experiment, run_name=f"{grid['dataset']} grid of {grid['runs']} runs")
            self.parent = parent.info.run_id
            self._log(self.parent, metrics=[], params={key: value if isinstance(value, str) else json.dumps(value)
                                                         for key, value in grid.items() if value is not None}, tags={})
        except TrackingError:
            raise
        except Exception as exc:  # MLflow's own errors: a store it cannot open, an experiment it refuses
            raise TrackingError(f"--track mlflow: {uri}: {_first_line(exc)}") from None

    def log(self, record: Mapping[str, Any]) -> None:
        """The record as a child run of the grid's parent run."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        run = self.client.create_run(self.experiment, run_name=run_name(record),
                                     tags={"mlflow.parentRunId": self.parent})
        run_id = run.info.run_id
        metrics = [Metric(key, value, now, step) for step, figures in epoch_points(record)
                   for key, value in figures.items()]
        metrics += [Metric("test_accuracy_by_labels", value, now, labels) for labels, value in label_points(record)]
        metrics += [Metric(key, float(record[key]), now, 0) for key in ("oracle_labels", "wall_seconds")
                    if record.get(key) is not None]
        machine = record.get("machine") or {}
        self._log(run_id, metrics=metrics, params=params(record),
                  tags={f"machine.{key}": str(value) for key, value in machine.items()})
        self.client.log_text(run_id, json.dumps(record, indent=1), "record.json")
        self._end(run_id, "FINISHED")
        self.records.append(record)

    def close(self, finished: bool) -> None:
        """The grid's records (and ``figures`` made of them, written into a folder) on its parent run,
        which ends."""
        if self.parent is None:
            return
        if self.records:
            self.client.log_text(self.parent, "".join(json.dumps(r) + "\n" for r in self.records), "records.jsonl")
            if self.figures is not None:
                with tempfile.TemporaryDirectory() as folder:
                    self.figures(self.records, Path(folder))
                    self.client.log_artifacts(self.parent, folder, "report")
        self._end(self.parent, "FINISHED" if finished else "FAILED")
        self.parent = None

    def _end(self, run_id: str, status: str) -> None:
        """End a run; the links MLflow prints then go to stderr, with the progress (stdout is the results)."""
        with contextlib.redirect_stdout(sys.stderr):
            self.client.set_terminated(run_id, status)

    def _log(self, run_id: str, metrics: list[Any], params: Mapping[str, str], tags: Mapping[str, str]) -> None:
        from mlflow.entities import Param, RunTag

        for part in _chunks(metrics, 1000):
            if part:
                self.client.log_batch(run_id, metrics=part)
        for part in _chunks([Param(safe_name(k), v) for k, v in params.items()], _BATCH):
            if part:
                self.client.log_batch(run_id, params=part)
        for part in _chunks([RunTag(k, v) for k, v in tags.items()], _BATCH):
            if part:
                self.client.log_batch(run_id, tags=part)


def _check_server(uri: str) -> None:
    """A :class:`~sslzoo.errors.TrackingError` unless the tracking server at ``uri`` answers ``/health``."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=HEALTH_TIMEOUT) as answer:
            answer.read()
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"--track mlflow: the MLflow tracking server at {uri} does not answer ({reason}); "
                            f"start it, or point MLFLOW_TRACKING_URI at one that runs") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
