"""Result records: one JSON-friendly dict per strategy × dataset × seed."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sslzoo._contract.plugins import PluginInfo
from sslzoo._version import __version__

SCHEMA_VERSION = 2
"""The schema of the records the engine writes (their ``schema`` key; :mod:`sslzoo._results.record`
reads every schema)."""


def versions(plugins: list[PluginInfo]) -> dict[str, Any]:
    """The versions that produced a record: sslzoo, torch, Python and the strategy's plugins."""
    return {"sslzoo": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "plugins": [{"name": p.name, "distribution": p.distribution or "sslzoo",
                         "version": p.version or __version__} for p in plugins]}


def round_float(value: float, digits: int = 6) -> float:
    """A float rounded for records (keeps JSON short, equal values stay equal)."""
    return round(float(value), digits)


def selected_on_test(record: Mapping[str, Any]) -> int:
    """The record's ``patience`` (0: none, or selected on a validation set): its training kept the epoch
    with the best *test* accuracy, a model selection on the test set that overstates what a held-out
    test set would show."""
    if record.get("validation"):
        return 0
    options = record.get("options")
    value = options.get("patience") if isinstance(options, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def selected_on_test_note(patience: Sequence[int]) -> str:
    """One sentence for tables that mark test-selected rows."""
    values = ", ".join(str(p) for p in sorted(set(patience)))
    return (f"selected on the test set (patience={values}): training stopped after that many epochs without a "
            f"better test accuracy and kept the best epoch's weights, so the accuracy overstates what a held-out "
            f"test set would show")
