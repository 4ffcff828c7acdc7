"""Trackers: a grid's records, as each run finishes, in the experiment trackers teams already use:
MLflow (:mod:`~sslzoo._tracking.mlflow_runs`) and TensorBoard (:mod:`~sslzoo._tracking.tensorboard_events`),
behind one interface (:mod:`~sslzoo._tracking.tracker`). The bench's driver, the one process that
writes the records, feeds them: a tracker sees what the records hold, nothing else.

May import: :mod:`sslzoo._engine` and below (it reads records as the JSON objects they are); never
results, planning, reports, labeling or the CLI.
"""

from __future__ import annotations

from sslzoo._tracking.tracker import TRACKERS, Tracker, Tracking, make_tracking

__all__ = ["TRACKERS", "Tracker", "Tracking", "make_tracking"]
