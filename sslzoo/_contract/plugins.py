"""The plugin manager: built-in plugins, entry-point discovery and ``SSLZOO_LOAD_PLUGINS``.

Built-in strategies, datasets and models live in :mod:`sslzoo._default_plugins` and are
registered through exactly the same pluggy path as third-party plugins, which arrive through
the ``sslzoo`` entry-point group.

A plugin that does not fit this sslzoo's plugin API (:mod:`sslzoo._contract.plugin_api`) — it declares a
range that excludes it, or it fails to import because an sslzoo name it uses no longer exists —
is not loaded: a one-line :class:`~sslzoo.errors.PluginWarning` names it and the versions, and
everything else works. Any other failure to import stops every command.
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

from sslzoo._contract import hookspecs
from sslzoo._contract.plugin_api import DECLARATION, MIGRATION_PAGE, PLUGIN_API, misfit, missing_name
from sslzoo._version import __version__
from sslzoo.errors import PluginError, PluginWarning

ENTRY_POINT_GROUP = "sslzoo"
BUILT_IN = "sslzoo"
"""The distribution of the built-in plugins."""
LOAD_ENV = "SSLZOO_LOAD_PLUGINS"
TRACE_ENV = "SSLZOO_TRACE_PLUGINS"

DEFAULT_PLUGINS = (
    "sslzoo._default_plugins.datasets",
    "sslzoo._default_plugins.user_datasets",
    "sslzoo._default_plugins.models",
    "sslzoo._default_plugins.backbones",
    "sslzoo._default_plugins.recipes",
    "sslzoo._default_plugins.stopping_criteria",
    "sslzoo._default_plugins.pretrainers",
    "sslzoo._default_plugins.supervised",
    "sslzoo._default_plugins.uncertainty",
    "sslzoo._default_plugins.mc_dropout",
    "sslzoo._default_plugins.coreset",
    "sslzoo._default_plugins.badge",
    "sslzoo._default_plugins.batchbald",
    "sslzoo._default_plugins.committee",
    "sslzoo._default_plugins.epig",
    "sslzoo._default_plugins.typiclust",
    "sslzoo._default_plugins.probcover",
    "sslzoo._default_plugins.cluster_margin",
    "sslzoo._default_plugins.pseudo_label",
    "sslzoo._default_plugins.self_training",
    "sslzoo._default_plugins.label_propagation",
    "sslzoo._default_plugins.fixmatch",
    "sslzoo._default_plugins.flexmatch",
    "sslzoo._default_plugins.freematch",
    "sslzoo._default_plugins.softmatch",
    "sslzoo._default_plugins.dash",
    "sslzoo._default_plugins.uda",
    "sslzoo._default_plugins.mixmatch",
    "sslzoo._default_plugins.remixmatch",
    "sslzoo._default_plugins.mean_teacher",
    "sslzoo._default_plugins.vat",
    "sslzoo._default_plugins.pi_model",
    "sslzoo._default_plugins.simmatch",
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from; ``api`` is the plugin API range it declares, ``problem`` why it was not
    loaded (None for a loaded plugin)."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: tuple[str, ...] = field(default=())
    api: str | None = None
    problem: str | None = None

    @property
    def provider(self) -> str:
        """What qualifies the names it registers (``provider:name``): its distribution, else its own name."""
        return self.distribution or self.name

    def label(self) -> str:
        """``name`` or ``name (distribution dist)`` for messages."""
        return f"{self.name} (distribution {self.distribution})" if self.distribution else self.name

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distribution": self.distribution, "version": self.version,
                "hooks": list(self.hooks), "api": self.api, "loaded": self.problem is None, "problem": self.problem}


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
    """A plugin manager, what is known of each plugin registered with it, and the installed plugins
    that were not loaded because they do not fit the plugin API (``skipped``)."""

    manager: pluggy.PluginManager
    info: dict[str, PluginInfo] = field(default_factory=dict)
    skipped: list[PluginInfo] = field(default_factory=list)

    def add(self, plugin: object, name: str, dist: str | None = None, version: str | None = None,
            api: str | None = None) -> None:
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
        self.info[name] = PluginInfo(name, dist, version, tuple(sorted(hooks)), api)

    def skip(self, info: PluginInfo) -> None:
        """Leave out a plugin that does not fit the plugin API, with a warning saying why."""
        self.skipped.append(info)
        warnings.warn(PluginWarning(f"plugin {info.label()} is not loaded: {info.problem}"), stacklevel=3)

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
    for module_name in DEFAULT_PLUGINS:
        plugins.add(importlib.import_module(module_name), module_name, BUILT_IN, __version__)
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
            missing = missing_name(exc)
            if missing is None:
                raise PluginError(
                    f"plugin {ep.name!r} from distribution {dist or '?'} failed to import: "
                    f"{type(exc).__name__}: {exc}") from exc
            plugins.skip(PluginInfo(ep.name, dist, version, problem=(
                f"it fails to import: {missing}; sslzoo no longer has that name (plugin API {PLUGIN_API}): "
                f"see {MIGRATION_PAGE}")))
            continue
        declared = getattr(plugin, DECLARATION, getattr(sys.modules.get(ep.module), DECLARATION, None))
        problem = misfit(declared)
        if problem is not None:
            plugins.skip(PluginInfo(ep.name, dist, version, api=str(declared), problem=problem))
            continue
        plugins.add(plugin, ep.name, dist, version, declared)
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
