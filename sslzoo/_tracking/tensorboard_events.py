"""``--track tensorboard``: each run's curve as TensorBoard event files under a directory.

Events are written with torch's own writer (:class:`torch.utils.tensorboard.SummaryWriter`), which
needs the ``tensorboard`` package (``pip install 'sslzoo[tensorboard]'``). A grid gets a folder
``DIR/YYYYmmdd-HHMMSS-DATASET`` (``DIR``: ``--tensorboard-dir``, default ``runs``, TensorBoard's
own default) and each run, when it finishes, a folder in it named ``STRATEGY_Llabels_seedN``
(TensorBoard's "run"), holding

* the scalars ``test_accuracy/by_epoch`` and ``pseudo_accuracy/by_epoch`` (the step: epochs trained
  since the run began), ``test_accuracy/by_labels`` (the step: oracle labels at each round's end)
  and ``wall_seconds`` (step 0);
* the text ``params``: the run's settings (:func:`sslzoo._tracking.series.params`) and its machine;
* ``record.json``, the record itself.

Point TensorBoard at the directory: ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sslzoo._tracking.series import epoch_points, label_points, params, run_folder, safe_name
from sslzoo.errors import TrackingError

MISSING = "--track tensorboard needs TensorBoard, which is not installed: pip install 'sslzoo[tensorboard]'"
DEFAULT_DIR = "runs"


class TensorBoardTracker:
    """The grid's runs as TensorBoard event files under ``directory`` (see the module's docstring)."""

    name = "tensorboard"

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR) -> None:
        self.directory = Path(directory)
        self.grid = self.directory
        self.writer: Any = None

    def open(self, grid: Mapping[str, Any]) -> None:
        """Check that TensorBoard's writer can be had and the directory written; make the grid's folder."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise TrackingError(MISSING) from None
        self.writer = SummaryWriter
        dataset = safe_name(Path(str(grid["dataset"])).name or str(grid["dataset"]))
        self.grid = self.directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{dataset}"
        try:
            self.grid.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(f"--tensorboard-dir {self.directory}: {exc.strerror or exc}") from None

    def log(self, record: Mapping[str, Any]) -> None:
        """The record's curve, settings and the record itself in its run's folder."""
        folder = self.grid / run_folder(record)
        writer = self.writer(log_dir=str(folder))
        try:
            for step, figures in epoch_points(record):
                for key, value in figures.items():
                    writer.add_scalar(f"{key}/by_epoch", value, step)
            for labels, value in label_points(record):
                writer.add_scalar("test_accuracy/by_labels", value, labels)
            if record.get("wall_seconds") is not None:
                writer.add_scalar("wall_seconds", float(record["wall_seconds"]), 0)
            settings = {**params(record), **{f"machine.{k}": str(v) for k, v in (record.get("machine") or {}).items()}}
            writer.add_text("params", "\n".join(f"    {key} = {value}" for key, value in settings.items()), 0)
        finally:
            writer.close()
        (folder / "record.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    def close(self, finished: bool) -> None:
        """Nothing is left open: each run's writer closed when the run was logged."""
