"""The registry: strategies, datasets and models by name, filled from the plugins' hooks."""

from __future__ import annotations

import fnmatch
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from torch import nn

from sslzoo._contract.dataset import Dataset
from sslzoo._contract.hookspecs import HOOK_NAMES, REGISTRATION_HOOKS
from sslzoo._contract.plugin_api import MIGRATION_PAGE
from sslzoo._contract.plugins import BUILT_IN, PluginInfo, Plugins, make_plugins
from sslzoo._contract.pretraining import Pretrainer
from sslzoo._contract.recipe import Recipe
from sslzoo._contract.stopping import StoppingCriterion
from sslzoo._contract.strategy import FAMILIES, Strategy, first_api, unfinished
from sslzoo._ops.model_zoos import ZOOS, ZooModel, zoo_model
from sslzoo._version import __version__
from sslzoo.errors import AmbiguousNameError, OptionError, PluginError, PluginWarning, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model builder: ``build(input_shape, num_classes) -> nn.Module``."""

    name: str
    build: Callable[[tuple[int, ...], int], nn.Module]
    summary: str = ""


QUALIFIER = ":"
"""Separates a provider from a name in a qualified name ``DIST:NAME`` (``sslzoo:kcenter``)."""


def _canonical(provider: str) -> str:
    """A distribution name as pip compares them: case, ``-``, ``_`` and ``.`` do not matter."""
    return re.sub(r"[-_.]+", "-", provider).lower()


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the object and the plugin that registered it."""

    name: str
    obj: T
    plugin: PluginInfo

    @property
    def qualified_name(self) -> str:
        """``DIST:NAME``: the name with the distribution that provides it (``sslzoo`` for the built-ins)."""
        return f"{self.plugin.provider}{QUALIFIER}{self.name}"


class Table(Generic[T]):
    """Names of one kind (strategy, dataset or model) → entries.

    Two plugins of different distributions may register one name: both stay reachable by their
    qualified names ``DIST:NAME``, and the bare name, which names no one thing, is an
    :class:`~sslzoo.errors.AmbiguousNameError` listing them. A name that no other plugin registers
    answers to both its bare and its qualified name.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.providers: dict[str, list[Entry[T]]] = {}  # bare name → its entries: sslzoo's, then by distribution

    def add(self, name: str, obj: T, plugin: PluginInfo) -> None:
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin.label()} registered a {self.kind} without a name")
        if QUALIFIER in name:
            raise PluginError(f"plugin {plugin.label()} registered {self.kind} {name!r}: a name cannot hold "
                              f"{QUALIFIER!r}, which separates a distribution from a name (DIST{QUALIFIER}NAME)")
        entries = self.providers.setdefault(name, [])
        for first in entries:
            if _canonical(first.plugin.provider) == _canonical(plugin.provider):
                raise PluginError(f"{self.kind} {name!r} is registered twice: by plugin {first.plugin.label()} "
                                  f"and by plugin {plugin.label()}")
        entries.append(Entry(name, obj, plugin))
        entries.sort(key=lambda e: (e.plugin.provider != BUILT_IN, _canonical(e.plugin.provider)))

    def get(self, name: str) -> Entry[T]:
        """The entry of a bare name that one plugin registers, or of a qualified name ``DIST:NAME``."""
        provider, qualified, bare = name.rpartition(QUALIFIER)
        found = self.providers.get(bare, [])
        if qualified:
            for entry in found:
                if _canonical(entry.plugin.provider) == _canonical(provider):
                    return entry
            raise UnknownNameError(self.kind, name, [e.qualified_name for es in self.providers.values() for e in es])
        if len(found) > 1:
            raise AmbiguousNameError(self.kind, name, [entry.qualified_name for entry in found])
        if not found:
            raise UnknownNameError(self.kind, name, self.entries)
        return found[0]

    def __contains__(self, name: object) -> bool:
        """Whether ``name``, bare (ambiguous or not) or qualified, is registered."""
        if not isinstance(name, str):
            return False
        provider, qualified, bare = name.rpartition(QUALIFIER)
        return any(not qualified or _canonical(e.plugin.provider) == _canonical(provider)
                   for e in self.providers.get(bare, []))

    @property
    def entries(self) -> dict[str, Entry[T]]:
        """Every entry by the name that reaches it: its bare name, or its qualified name where several
        plugins register that name; in the order of the bare names."""
        return {name if len(found) == 1 else entry.qualified_name: entry
                for name, found in sorted(self.providers.items()) for entry in found}

    def clashes(self) -> dict[str, list[Entry[T]]]:
        """The names several plugins register → their entries: sslzoo's first, then by distribution."""
        return {name: list(found) for name, found in sorted(self.providers.items()) if len(found) > 1}

    def names(self, pattern: str = "*") -> list[str]:
        """The names that reach the entries (:attr:`entries`) whose bare or qualified name matches the glob."""
        return [name for name, entry in self.entries.items()
                if fnmatch.fnmatchcase(entry.name, pattern) or fnmatch.fnmatchcase(entry.qualified_name, pattern)]


ZOO_PLUGIN = PluginInfo("sslzoo._default_plugins.backbones", BUILT_IN, __version__)
"""The plugin that answers for the zoo models (it lists them in its summary)."""


class ModelTable(Table[ModelSpec]):
    """The registered models, and the models of other libraries that their names reach:
    ``torchvision:NAME`` and ``timm:NAME``, with options after the name
    (``torchvision:resnet50,weights=PATH,freeze=true``; :mod:`sslzoo._ops.model_zoos`), built on demand
    and never listed. An addition to plugin API 1.0: a plugin distribution named ``torchvision`` or
    ``timm`` cannot reach its models by qualified name."""

    def get(self, name: str) -> Entry[ModelSpec]:
        zoo: ZooModel | None = zoo_model(name)
        if zoo is None:
            return super().get(name)
        return Entry(name, ModelSpec(name, zoo.build, f"{zoo.zoo} model {zoo.name}"), ZOO_PLUGIN)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name.partition(QUALIFIER)[0] in ZOOS:
            try:
                self.get(name)
            except (UnknownNameError, OptionError):
                return False
            return True
        return super().__contains__(name)


class Registry:
    """Everything the plugins registered, with the plugin manager that found them."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins
        self.strategies: Table[type[Strategy]] = Table("strategy")
        self.datasets: Table[type[Dataset]] = Table("dataset")
        self.models: Table[ModelSpec] = ModelTable("model")
        self.recipes: Table[Recipe] = Table("recipe")
        self.stopping_criteria: Table[type[StoppingCriterion]] = Table("stopping criterion")
        self.pretrainers: Table[type[Pretrainer]] = Table("pretraining method")
        self._registered: dict[str, int] = {}  # plugin name → names it registered
        self._collect("register_strategies", self._strategy)
        self._collect("register_datasets", self._dataset)
        self._collect("register_models", self._model)
        self._collect("register_recipes", self._recipe)
        self._collect("register_stopping_criteria", self._stopping_criterion)
        self._collect("register_pretrainers", self._pretrainer)
        self._warn_idle()

    def call_each(self, hook_name: str, make_kwargs: Callable[[PluginInfo], dict[str, Any]]) -> list[Any]:
        """Call hook ``hook_name`` plugin by plugin, so that a failure names its plugin and distribution;
        the answers that are not None."""
        manager = self.plugins.manager
        everyone = manager.get_plugins()
        answers: list[Any] = []
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            info = self.plugins.info.get(impl.plugin_name, PluginInfo(impl.plugin_name))
            only = manager.subset_hook_caller(hook_name, [p for p in everyone if p is not impl.plugin])
            try:
                answers.extend(only(**make_kwargs(info)))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {info.label()} failed in {hook_name}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        return answers

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook (``run_started``, ``round_ended``, ``run_ended``) on every plugin."""
        self.call_each(hook_name, lambda info: kwargs)

    def ask(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a hook that answers (``report_series``) on every plugin: the answers that are not None."""
        return self.call_each(hook_name, lambda info: kwargs)

    def _collect(self, hook_name: str, add: Callable[..., None]) -> None:
        """Call one registration hook plugin by plugin, so each entry knows its plugin."""
        def kwargs(info: PluginInfo) -> dict[str, Any]:
            def register(*args: Any, **kw: Any) -> None:
                add(info, *args, **kw)
                self._registered[info.name] = self._registered.get(info.name, 0) + 1

            return {"register": register}

        self.call_each(hook_name, kwargs)

    def _warn_idle(self) -> None:
        """A loaded plugin that registers nothing and observes nothing is a warning naming it: most
        often its hook functions lack ``@sslzoo.hookimpl``, and its strategies would be silently missing."""
        for info in self.plugins.list():
            if self._registered.get(info.name) or set(info.hooks) - set(REGISTRATION_HOOKS):
                continue
            plugin = self.plugins.manager.get_plugin(info.name)
            unmarked = [h for h in HOOK_NAMES if h not in info.hooks and callable(getattr(plugin, h, None))]
            if unmarked:
                why = (f"its {', '.join(unmarked)} {'is' if len(unmarked) == 1 else 'are'} not marked with "
                       f"@sslzoo.hookimpl")
            elif info.hooks:
                why = f"its {', '.join(info.hooks)} never calls register()"
            else:
                why = "it implements no sslzoo hook (mark each hook function with @sslzoo.hookimpl)"
            warnings.warn(PluginWarning(f"plugin {info.label()} registers nothing: {why}"), stacklevel=3)

    def _strategy(self, plugin: PluginInfo, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise PluginError(f"plugin {plugin.label()} registered {cls!r}, which is not a Strategy subclass")
        if not cls.family:
            raise PluginError(f"plugin {plugin.label()}: strategy {cls.name!r} declares no family; set the class "
                              f"attribute family to one of {', '.join(FAMILIES)}")
        if cls.family not in FAMILIES:
            raise PluginError(f"plugin {plugin.label()}: strategy {cls.name!r} has family {cls.family!r}; "
                              f"allowed: {', '.join(FAMILIES)}")
        missing = unfinished(cls)
        if missing:
            raise PluginError(f"plugin {plugin.label()}: strategy {cls.name!r} cannot run: {missing}")
        old = first_api(cls)
        if old is not None:
            warnings.warn(PluginWarning(f"plugin {plugin.label()}: strategy {cls.name!r} is not registered: it is "
                                        f"written for the first plugin API ({old}); see {MIGRATION_PAGE}"),
                          stacklevel=2)
            return
        self.strategies.add(cls.name, cls, plugin)

    def _dataset(self, plugin: PluginInfo, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Dataset)):
            raise PluginError(f"plugin {plugin.label()} registered {cls!r}, which is not a Dataset subclass")
        self.datasets.add(cls.name, cls, plugin)

    def _model(self, plugin: PluginInfo, name: str, build: Any, summary: str = "") -> None:
        if not callable(build):
            raise PluginError(f"plugin {plugin.label()} registered model {name!r} with a builder "
                              f"that is not callable")
        self.models.add(name, ModelSpec(name, build, summary), plugin)

    def _recipe(self, plugin: PluginInfo, recipe: Any) -> None:
        if not isinstance(recipe, Recipe):
            raise PluginError(f"plugin {plugin.label()} registered {recipe!r}, which is not a sslzoo.Recipe")
        self.recipes.add(recipe.name, recipe, plugin)

    def _stopping_criterion(self, plugin: PluginInfo, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, StoppingCriterion)):
            raise PluginError(f"plugin {plugin.label()} registered {cls!r}, which is not a "
                              f"sslzoo.StoppingCriterion subclass")
        if getattr(cls.check, "__isabstractmethod__", False):
            raise PluginError(f"plugin {plugin.label()}: stopping criterion {cls.name!r} defines no check")
        self.stopping_criteria.add(cls.name, cls, plugin)

    def _pretrainer(self, plugin: PluginInfo, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Pretrainer)):
            raise PluginError(f"plugin {plugin.label()} registered {cls!r}, which is not a sslzoo.Pretrainer subclass")
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:
            raise PluginError(f"plugin {plugin.label()}: pretraining method {cls.name!r} defines no "
                              f"{', '.join(missing)}")
        self.pretrainers.add(cls.name, cls, plugin)


_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, built on first use from the installed plugins."""
    global _default
    if _default is None:
        _default = Registry(make_plugins())
    return _default


def reset_default_registry(registry: Registry | None = None) -> None:
    """Forget (or replace) the process-wide registry; the next use rebuilds it."""
    global _default
    _default = registry


#: What a path given as the dataset is read as, by its ending: (dataset name, option naming the path).
PATH_DATASETS: dict[str, tuple[str, str]] = {".npz": ("npz", "path"), ".csv": ("csv", "path")}
FOLDER_DATASET = ("imagefolder", "root")


def resolve_dataset(argument: str, options: Mapping[str, Any] | None = None,
                    registry: Registry | None = None) -> tuple[str, dict[str, Any]]:
    """A dataset argument as (registered name, options): a name stays as it is; a path (one with a
    ``/``, or an existing file or directory that is not a registered name's spelling) becomes the
    dataset that reads it: a directory ``imagefolder`` (``root=PATH``), a ``.npz`` file ``npz`` and a
    ``.csv`` file ``csv`` (``path=PATH``)."""
    options = dict(options or {})
    if argument in (registry or default_registry()).datasets or not _looks_like_path(argument):
        return argument, options
    name, key = PATH_DATASETS.get(os.path.splitext(argument)[1].lower(), FOLDER_DATASET)
    if key in options:
        raise OptionError(f"--dataset {argument} is a path and -d {key}={options[key]} another one; give one of them")
    return name, {key: argument, **options}


def _looks_like_path(argument: str) -> bool:
    return ("/" in argument or os.sep in argument or os.path.splitext(argument)[1].lower() in PATH_DATASETS
            or os.path.exists(argument))
