"""What a tracker logs of a record: its parameters, and its curve as series of points.

A record's curve has an entry per evaluation (``round``, ``epoch`` of ``epochs``, ``labels``,
``test_accuracy``, ``pseudo_accuracy``); the trackers draw it against two axes, the epochs trained
since the run began (every round's epochs one after another) and the oracle labels at each round's
end (the active-learning curve). Both come from the record alone, so a tracker shows the record's
numbers, never others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

PARAM_KEYS = ("strategy", "family", "dataset", "seed", "preset", "model", "labels", "device")
"""The record's keys a tracker logs as parameters, beside each option and dataset option."""


def run_name(record: Mapping[str, Any]) -> str:
    """A run's name in a tracker: ``STRATEGY L labels seed N`` (the starting labels tell apart the
    runs of a grid of several label counts)."""
    return f"{record['strategy']} {record.get('labels')} labels seed {record['seed']}"


def run_folder(record: Mapping[str, Any]) -> str:
    """A run's folder name: ``STRATEGY_Llabels_seedN``."""
    return safe_name(f"{record['strategy']}_{record.get('labels')}labels_seed{record['seed']}")


def safe_name(text: str) -> str:
    """``text`` with every character a tracker's names or a file name may not hold as ``_``."""
    return re.sub(r"[^A-Za-z0-9_.\- ]", "_", text)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def params(record: Mapping[str, Any]) -> dict[str, str]:
    """The run's settings as text: :data:`PARAM_KEYS`, ``option.KEY`` for each strategy option and
    ``dataset_option.KEY`` for each dataset option."""
    found = {key: _text(record[key]) for key in PARAM_KEYS if record.get(key) is not None}
    for group, prefix in (("options", "option"), ("dataset_options", "dataset_option")):
        for key, value in sorted((record.get(group) or {}).items()):
            found[f"{prefix}.{key}"] = _text(value)
    return found


def epoch_points(record: Mapping[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """Each curve entry as (epochs trained since the run began, its figures): ``test_accuracy``, and
    ``pseudo_accuracy`` where pseudo-labels were given."""
    points: list[tuple[int, dict[str, float]]] = []
    offset, current, epochs = 0, None, 0
    for entry in record.get("curve") or []:
        if entry["round"] != current:
            offset += epochs if current is not None else 0
            current = entry["round"]
        epochs = entry["epochs"]
        figures = {"test_accuracy": float(entry["test_accuracy"])}
        if entry.get("pseudo_accuracy") is not None:
            figures["pseudo_accuracy"] = float(entry["pseudo_accuracy"])
        points.append((offset + entry["epoch"], figures))
    return points


def label_points(record: Mapping[str, Any]) -> list[tuple[int, float]]:
    """The test accuracy at each round's end against the oracle labels then."""
    return [(entry["labels"], float(entry["test_accuracy"])) for entry in record.get("curve") or []
            if entry["epoch"] == entry["epochs"]]
