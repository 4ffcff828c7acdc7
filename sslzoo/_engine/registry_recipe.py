"""How another process builds the registry of this one: the built-in plugins, then the others.

A worker process, a Ray task and a run's learner process each build the strategies of a run
again, from its spec, with a registry rebuilt from :class:`RegistryRecipe`: the plugins of the
process that planned the run, installed ones and those passed to
:func:`~sslzoo._contract.plugins.make_plugins` as ``extra`` alike.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from dataclasses import dataclass
from types import ModuleType

from sslzoo._contract.plugins import DEFAULT_PLUGINS, make_plugins
from sslzoo._contract.registry import Registry
from sslzoo.errors import PluginError, PluginWarning


@dataclass(frozen=True)
class PluginRef:
    """One plugin of the driver's registry as a worker adds it: a module by its name, any other
    plugin object as itself (pickled by reference to its class)."""

    name: str
    module: str | None
    plugin: object | None
    distribution: str | None
    version: str | None

    def load(self) -> object:
        return importlib.import_module(self.module) if self.module is not None else self.plugin


@dataclass(frozen=True)
class RegistryRecipe:
    """How a worker builds the driver's registry again: the built-ins, then the driver's other
    plugins (installed ones and those passed to :func:`~sslzoo._contract.plugins.make_plugins` as ``extra``)."""

    plugins: tuple[PluginRef, ...]

    @classmethod
    def of(cls, registry: Registry, providers_only: bool = False) -> RegistryRecipe:
        """The recipe of ``registry``; a plugin that cannot be sent to another process is a
        :class:`~sslzoo.errors.PluginError` naming it. ``providers_only``: only the plugins that
        register a strategy, dataset, model, recipe, stopping criterion or pretraining method (what a run's learner
        builds from; an observer plugin's hooks run where the run is judged)."""
        providers = {entry.plugin.name for table in (registry.strategies, registry.datasets, registry.models,
                                                     registry.recipes, registry.stopping_criteria,
                                                     registry.pretrainers)
                     for entry in table.entries.values()}
        refs = []
        for info in registry.plugins.list():
            if info.name in DEFAULT_PLUGINS or (providers_only and info.name not in providers):
                continue
            plugin = registry.plugins.manager.get_plugin(info.name)
            module = plugin.__name__ if isinstance(plugin, ModuleType) else None
            ref = PluginRef(info.name, module, None if module else plugin, info.distribution, info.version)
            try:
                pickle.loads(pickle.dumps(ref))
            except Exception as exc:
                raise PluginError(f"plugin {info.label()} cannot run in worker processes: it cannot be pickled "
                                  f"({type(exc).__name__}: {exc}); register a module, or an instance of a class "
                                  f"defined at the top level of a module") from None
            refs.append(ref)
        return cls(tuple(refs))

    def needs_main(self) -> bool:
        """Whether a plugin is defined in the ``__main__`` module (a script's), which another process
        must then import to rebuild it."""
        return any(ref.module == "__main__" or type(ref.plugin).__module__ == "__main__" for ref in self.plugins)

    def build(self) -> Registry:
        """The registry (its warnings were the driver's to give)."""
        plugins = make_plugins(load="")
        for ref in self.plugins:
            plugins.add(ref.load(), ref.name, ref.distribution, ref.version)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PluginWarning)
            return Registry(plugins)
