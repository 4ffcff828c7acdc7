"""Build throw-away plugins: a registry of strategy classes, or a distribution (a module plus a
.dist-info) on ``sys.path``."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path
from typing import Any

import sslzoo
from sslzoo import Strategy, hookimpl
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo._planning.executor import SerialExecutor


class Strategies:
    """A plugin registering ``strategies``; an instance pickles by reference to this class, so a learner
    process can rebuild it when the strategies are defined at the top level of a module."""

    def __init__(self, strategies: tuple[type[Strategy], ...]) -> None:
        self.strategies = strategies

    @hookimpl
    def register_strategies(self, register: Any) -> None:
        for strategy in self.strategies:
            register(strategy)


def registry_with(*strategies: type[Strategy]) -> Registry:
    """A fresh registry holding the built-ins and ``strategies``, registered by one plugin object."""
    return Registry(make_plugins(load="", extra=(Strategies(strategies),)))


def write_fake_distribution(root: Path, dist: str, module: str, source: str, version: str = "1.2.3",
                            entry_point: str | None = None) -> None:
    """Write ``module.py`` and ``dist-version.dist-info`` with an ``sslzoo`` entry point under ``root``, so that
    a Python with ``root`` on its path (``PYTHONPATH``) finds the distribution."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[sslzoo]\n{entry_point or dist} = {module}\n")


def install_fake_distribution(root: Path, dist: str, module: str, source: str, version: str = "1.2.3",
                              entry_point: str | None = None) -> None:
    """:func:`write_fake_distribution`, with ``root`` put on ``sys.path`` of this process."""
    write_fake_distribution(root, dist, module, source, version, entry_point)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    sys.modules.pop(module, None)


IN_PROCESS = SerialExecutor(in_process=True)
"""The executor for a test whose strategies are defined in the test or patched in its process: each
run's learner stays in this process (a learner process could not import them), as
``sslzoo bench --in-process`` does."""


def run_here(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`sslzoo.run` with each learner in this process (:data:`IN_PROCESS`)."""
    return sslzoo.run(*args, executor=IN_PROCESS, **kwargs)
