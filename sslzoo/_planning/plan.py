"""The plan of a bench: one protocol, built once, validated once, expanded into runs once.

A :class:`Plan` holds what a grid of runs follows: the groups of strategies run at each label
count (with their options, the preset name their records carry and their store), the dataset and
its options, the seeds, the model, the split, the device and whether control groups run beside.
It is built from the flags of ``sslzoo bench`` (:meth:`Plan.of`), from a preset or a TOML file
(:func:`preset_plan`, the one function that turns a preset into runs) or from :func:`sslzoo.run`'s
arguments, with one merge rule: explicit flags over the file over the defaults. Values keep their
types: nothing travels through ``-o KEY=VALUE`` text twice.

:meth:`Plan.expand` turns it into runs, a :class:`~sslzoo._engine.run.RunSpec` and its built
strategy each, every option checked and nothing loaded; the executors run those, the record store
plans ``--resume`` from them, and the results page holds committed records to them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sslzoo._contract.registry import Registry, default_registry, resolve_dataset
from sslzoo._contract.strategy import Strategy
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.run import RunSpec
from sslzoo._planning.control_group import with_controls
from sslzoo._planning.preset import Preset
from sslzoo._planning.routing import merge_options, options_for, strategy_options
from sslzoo._results.store import RecordStore
from sslzoo.errors import OptionError

#: What ``sslzoo bench`` runs with no ``--strategy``: supervised vs pseudo-labeling vs self-training
#: vs uncertainty active learning on the bundled MNIST, sized for a few minutes on 2 CPU cores
#: (schedules scaled down from the papers' 100+ epochs; ``-o`` overrides any of these).
DEFAULT_BENCH: dict[str, Any] = {
    "strategies": ("supervised", "pseudo_label", "self_training", "entropy"),
    "dataset": "mnist",
    "labels": 1000,
    "seed": 0,
    "seeds": 1,
    "options": {
        "pseudo_label.epochs": 20, "pseudo_label.t1": 4, "pseudo_label.t2": 12,
        "pseudo_label.unlabeled_batch_size": 128,
        "self_training.epochs": 10, "self_training.criterion": "k_best", "self_training.k_best": 2000,
        "self_training.max_rounds": 2, "self_training.retrain": "warm",
        "entropy.epochs": 10, "entropy.query_size": 100, "entropy.budget": 1300, "entropy.retrain": "warm",
    },
}

#: The most seeds one bench runs (its plan of runs is built before the first run starts).
MAX_SEEDS = 1000
#: Seeds lie in [0, MAX_SEED], the range every generator sslzoo seeds accepts.
MAX_SEED = 2**32 - 1
#: Upper bounds of the options that count a run's loops (seeds have :data:`MAX_SEEDS`): a larger value
#: is a typo that would run until killed.
LOOP_LIMITS = {"epochs": 100_000, "max_rounds": 100_000}

Built = list[tuple[RunSpec, Strategy]]
Out = str | os.PathLike | RecordStore | None


def check_seeds(seed: int, seeds: int) -> None:
    """Seeds ``seed .. seed+seeds-1`` must be integers in [0, :data:`MAX_SEED`], at most :data:`MAX_SEEDS` of them."""
    for name, value in (("--seed", seed), ("--seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(f"{name} must be an integer, got {value!r}")
    if seeds < 1:
        raise OptionError(f"--seeds must be at least 1, got {seeds}")
    if seeds > MAX_SEEDS:
        raise OptionError(f"--seeds {seeds} is too many: at most {MAX_SEEDS} seeds in one bench")
    if seed < 0 or seed + seeds - 1 > MAX_SEED:
        raise OptionError(f"--seed {seed}: seeds must lie between 0 and {MAX_SEED}"
                          + (f" (the last seed would be {seed + seeds - 1})" if seeds > 1 and seed >= 0 else ""))


def check_loops(strategy: Strategy) -> None:
    """The strategy's epochs per round and rounds must be at most their :data:`LOOP_LIMITS`."""
    for key, value in strategy.resolved_options().items():
        limit = LOOP_LIMITS.get(key.rpartition(".")[2])
        if limit is not None and isinstance(value, int) and value > limit:
            raise OptionError(f"option {key}={value} of strategy {strategy.name!r} is not allowed: it must be at most "
                              f"{limit}")


@dataclass(frozen=True)
class Group:
    """The strategies run at one label count: their options (``-o`` keys, ``NAME.key`` for one
    strategy), the preset name their records carry and their store (a preset run at several label
    counts is one group per count, each with a store of its own). ``strategies=None`` runs the
    default comparison, :data:`DEFAULT_BENCH`, with its scaled-down schedules under ``options``."""

    labels: int = 1000
    strategies: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None
    out: Out = None


@dataclass(frozen=True)
class Plan:
    """A protocol: its groups and the setup every run of it shares (see the module's docstring)."""

    groups: tuple[Group, ...]
    dataset: str = DEFAULT_BENCH["dataset"]
    seed: int = 0
    seeds: int = 1
    model: str | None = None
    device: str = "auto"
    split: str = "balanced"
    exclude_classes: tuple[int, ...] = ()
    dataset_options: Mapping[str, Any] = field(default_factory=dict)
    control: bool = False

    @classmethod
    def of(cls, strategies: str | Sequence[str] | None = None, dataset: str = DEFAULT_BENCH["dataset"], *,
           labels: int = 1000, options: Mapping[str, Any] | None = None, preset: str | None = None,
           out: Out = None, **setup: Any) -> Plan:
        """A plan of one label count: ``strategies`` (None: the default comparison) with ``options``,
        and the shared ``setup`` (``seed``, ``seeds``, ``model``, ``device``, ``split``,
        ``exclude_classes``, ``dataset_options``, ``control``)."""
        names = (strategies,) if isinstance(strategies, str) else None if strategies is None else tuple(strategies)
        setup["exclude_classes"] = tuple(setup.get("exclude_classes", ()))
        setup["dataset_options"] = dict(setup.get("dataset_options") or {})
        return cls((Group(labels, names, dict(options or {}), preset, out),), dataset, **setup)

    def strategies(self) -> list[str]:
        """Every strategy the plan names, in first-named order (the default comparison's for ``None``)."""
        names: list[str] = []
        for group in self.groups:
            for name in group.strategies or DEFAULT_BENCH["strategies"]:
                if name not in names:
                    names.append(name)
        return names

    def expand(self, registry: Registry | None = None) -> list[Built]:
        """Every group's runs: (spec, built strategy) for each strategy × seed, every option checked
        and every strategy built, nothing loaded."""
        registry = registry or default_registry()
        dataset, dataset_options = resolve_dataset(self.dataset, self.dataset_options, registry)
        check_seeds(self.seed, self.seeds)
        setup = {"dataset": dataset, "model": self.model, "device": self.device, "split": self.split,
                 "exclude_classes": tuple(self.exclude_classes)}
        seeds = range(self.seed, self.seed + self.seeds)
        return [self._runs(group, setup, dict(dataset_options), seeds, registry) for group in self.groups]

    def _runs(self, group: Group, setup: Mapping[str, Any], dataset_options: dict[str, Any], seeds: range,
              registry: Registry) -> Built:
        names, options = group.strategies, dict(group.options)
        if names is None:
            names, options = DEFAULT_BENCH["strategies"], merge_options(DEFAULT_BENCH["options"], options)
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise OptionError(f"strategy {twice[0]!r} is given twice; each strategy runs once per seed "
                              f"(--seeds N runs more)")
        per_strategy = strategy_options(list(names), options, registry)
        if self.control:
            per_strategy = with_controls(list(names), per_strategy, registry)
        specs = [RunSpec(strategy=name, labels=group.labels, seed=s, options=per_strategy[name], preset=group.preset,
                         dataset_options=dict(dataset_options), **setup) for name in per_strategy for s in seeds]
        built = [(spec, create_strategy(spec.strategy, registry, **spec.options)) for spec in specs]
        for _, strategy in built[::len(seeds) or 1]:  # one per strategy: the seeds share its options
            check_loops(strategy)
        return built


def preset_plan(preset: Preset, size: str = "full", *, strategies: Sequence[str] | None = None,
                labels: int | None = None, options: Mapping[str, Any] | None = None,
                dataset_options: Mapping[str, Any] | None = None, out: str | os.PathLike | None = None,
                registry: Registry | None = None) -> Plan:
    """The plan of ``preset`` at ``size`` (``full``, ``scaled`` or ``ci``): the one way a preset
    becomes runs, for ``sslzoo bench --preset``/``--config``, the results page and ``--resume``.

    Explicit values go over the file's: ``strategies`` (only the options they accept are kept),
    ``labels`` (the protocol's group at that count if it has one, else every strategy at it),
    ``options`` (a plain ``key`` replaces every ``NAME.key`` too; each ``-o`` key must belong to one
    of the strategies) and ``dataset_options``. A protocol of several label counts stores each count
    under ``out/labels-N``. The setup flags (``dataset``, ``seed``, ...) go over the result with
    :func:`dataclasses.replace`.
    """
    variant = preset.variant(size)
    names = list(strategies) if strategies else list(variant.strategies)
    merged = merge_options(variant.options if names == variant.strategies else options_for(variant.options, names),
                           dict(options or {}))
    groups = [(n, tuple(group), variant.record_name(n)) for n, group in variant.label_groups(names)]
    if labels is not None:
        groups = [g for g in groups if g[0] == labels and variant.several_counts()] or \
            [(labels, tuple(names), variant.record_name())]
    if len(groups) > 1:  # every -o key is checked against all the strategies, not only one count's
        strategy_options(names, merged, registry or default_registry())
    return Plan(tuple(Group(n, group, merged if list(group) == names else options_for(merged, list(group)), name,
                            os.path.join(out, f"labels-{n}") if out is not None and "@" in name else out)
                      for n, group, name in groups),
                dataset=variant.dataset, seed=variant.seed, seeds=variant.seeds, model=variant.model,
                split=variant.split, exclude_classes=tuple(variant.exclude_classes),
                dataset_options={**variant.dataset_options, **dict(dataset_options or {})})


def overridden(plan: Plan, **flags: Any) -> Plan:
    """``plan`` with the setup ``flags`` given explicitly (``None`` values are left out)."""
    given = {key: value for key, value in flags.items() if value is not None}
    if "exclude_classes" in given:
        given["exclude_classes"] = tuple(given["exclude_classes"])
    return dataclasses.replace(plan, **given)
