"""The plugin manager: built-in plugins, entry-point discovery and ``SSLZOO_LOAD_PLUGINS``.

Built-in strategies, datasets and models live in :mod:`sslzoo.default_plugins` and are
registered through exactly the same pluggy path as third-party plugins, which arrive through
the ``sslzoo`` entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any

import pluggy

from sslzoo import hookspecs
from sslzoo.errors import PluginError, PluginWarning

ENTRY_POINT_GROUP = "sslzoo"
LOAD_ENV = "SSLZOO_LOAD_PLUGINS"
TRACE_ENV = "SSLZOO_TRACE_PLUGINS"

DEFAULT_PLUGINS = (
    "sslzoo.default_plugins.datasets",
    "sslzoo.default_plugins.user_datasets",
    "sslzoo.default_plugins.models",
    "sslzoo.default_plugins.supervised",
    "sslzoo.default_plugins.uncertainty",
    "sslzoo.default_plugins.mc_dropout",
    "sslzoo.default_plugins.coreset",
    "sslzoo.default_plugins.badge",
    "sslzoo.default_plugins.batchbald",
    "sslzoo.default_plugins.typiclust",
    "sslzoo.default_plugins.pseudo_label",
    "sslzoo.default_plugins.self_training",
    "sslzoo.default_plugins.label_propagation",
    "sslzoo.default_plugins.fixmatch",
    "sslzoo.default_plugins.mean_teacher",
    "sslzoo.default_plugins.vat",
    "sslzoo.default_plugins.pi_model",
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: tuple[str, ...] = field(default=())

    def label(self) -> str:
        """``name`` or ``name (distribution dist)`` for messages."""
        return f"{self.name} (distribution {self.distribution})" if self.distribution else self.name

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "hooks": list(self.hooks)}


def _wanted(env: str | None) -> set[str] | None:
    """None means every installed plugin; an empty set means none."""
    if env is None:
        return None
    return {part.strip() for part in env.split(",") if part.strip()}


def _trace(pm: pluggy.PluginManager) -> None:
    def before(hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
        for impl in impls:
            print(f"sslzoo: hook {hook_name} -> plugin {impl.plugin_name}", file=sys.stderr)

    def after(outcome: pluggy.Result[Any], hook_name: str, impls: Sequence[pluggy.HookImpl],
              kwargs: Mapping[str, Any]) -> None:
        pass

    pm.add_hookcall_monitoring(before, after)


@dataclass
class Plugins:
    """A plugin manager and what is known of each plugin registered with it."""

    manager: pluggy.PluginManager
    info: dict[str, PluginInfo] = field(default_factory=dict)

    def add(self, plugin: object, name: str, dist: str | None = None, version: str | None = None) -> None:
        """Register ``plugin`` under ``name``; a hook that does not exist fails loudly."""
        label = PluginInfo(name, dist).label()
        if self.manager.get_plugin(name) is not None or name in self.info:
            raise PluginError(f"two plugins are named {name!r}; the second is {label}")
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            raise PluginError(f"plugin {label} is invalid: {exc}") from exc
        hooks = tuple(impl.function.__name__ for caller in self.manager.get_hookcallers(plugin) or []
                      for impl in caller.get_hookimpls() if impl.plugin is plugin)
        self.info[name] = PluginInfo(name, dist, version, tuple(sorted(hooks)))

    def list(self) -> list[PluginInfo]:
        """Every registered plugin, built-ins first."""
        return list(self.info.values())


def make_plugins(load: str | None | EllipsisType = ..., extra: tuple[object, ...] = ()) -> Plugins:
    """A fresh plugin manager with the built-ins, the selected entry points and ``extra`` plugins.

    ``load`` follows ``SSLZOO_LOAD_PLUGINS`` when not given: unset loads every installed plugin,
    an empty string none, a comma list only those (entry-point or distribution names).
    """
    wanted = _wanted(os.environ.get(LOAD_ENV) if isinstance(load, EllipsisType) else load)
    manager = pluggy.PluginManager("sslzoo")
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager)
    from sslzoo import __version__

    for module_name in DEFAULT_PLUGINS:
        plugins.add(importlib.import_module(module_name), module_name, "sslzoo", __version__)
    installed: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else None
        version = ep.dist.version if ep.dist is not None else None
        installed |= {ep.name} | ({dist} if dist else set())
        if wanted is not None and ep.name not in wanted and dist not in wanted:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin is reported, never swallowed
            raise PluginError(
                f"plugin {ep.name!r} from distribution {dist or '?'} failed to import: "
                f"{type(exc).__name__}: {exc}") from exc
        plugins.add(plugin, ep.name, dist, version)
    for name in sorted((wanted or set()) - installed):
        close = difflib.get_close_matches(name, sorted(installed), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else f"installed: {', '.join(sorted(installed)) or 'none'}"
        warnings.warn(PluginWarning(f"{LOAD_ENV} names {name!r}, which is no installed plugin (entry-point or "
                                    f"distribution name); {hint}"), stacklevel=2)
    for plugin in extra:
        plugins.add(plugin, getattr(plugin, "__name__", type(plugin).__name__))
    if os.environ.get(TRACE_ENV, "") not in ("", "0"):
        _trace(manager)
    return plugins
