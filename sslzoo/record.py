"""Result records: one JSON-friendly dict per strategy × dataset × seed."""

from __future__ import annotations

import platform
from typing import Any

import torch

from sslzoo.plugins import PluginInfo


def versions(plugins: list[PluginInfo]) -> dict[str, Any]:
    """The versions that produced a record: sslzoo, torch, Python and the strategy's plugins."""
    from sslzoo import __version__

    return {"sslzoo": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "plugins": [{"name": p.name, "distribution": p.distribution or "sslzoo",
                         "version": p.version or __version__} for p in plugins]}


def round_float(value: float, digits: int = 6) -> float:
    """A float rounded for records (keeps JSON short, equal values stay equal)."""
    return round(float(value), digits)
