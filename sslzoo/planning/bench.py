"""Benchmarks: run strategies × seeds on one dataset and summarise the records."""

from __future__ import annotations

import contextlib
import difflib
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sslzoo.contract.dataset import resolve_dataset
from sslzoo.contract.record import selected_on_test, selected_on_test_note
from sslzoo.contract.registry import Registry, default_registry
from sslzoo.contract.strategy import Strategy
from sslzoo.datasets.split import initial_labels
from sslzoo.engine.catalog import create_strategy, option_names
from sslzoo.engine.run import Progress, Record, RunSpec
from sslzoo.errors import OptionError
from sslzoo.planning.control_group import with_controls
from sslzoo.planning.executor import Executor, SerialExecutor
from sslzoo.planning.preset import merge_options
from sslzoo.results.formatting import by_keys, group_by, mean_std, plus_minus, text_table
from sslzoo.results.store import RecordStore

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


def strategy_options(names: Sequence[str], given: Mapping[str, Any], registry: Registry) -> dict[str, dict]:
    """Split ``-o`` options among strategies: ``key=v`` goes to every strategy that has ``key``,
    ``name.key=v`` to strategy ``name`` only. A key no chosen strategy has is an error."""
    per: dict[str, dict[str, Any]] = {name: {} for name in names}
    fields = {name: option_names(name, registry) for name in names}
    for key, value in given.items():
        key = key.replace("-", "_")
        takers = [name for name in names if key in fields[name]]
        scope, dot, bare = key.rpartition(".")
        if not takers and dot and scope in per:
            per[scope][bare] = value  # make_options reports an unknown key with the valid ones
            continue
        if not takers:
            valid = sorted(set().union(*fields.values()))
            close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise OptionError(f"no strategy being run has option {key!r}{hint}; valid options: {', '.join(valid)}")
        for name in takers:
            per[name][key] = value
    return per


#: The most seeds one bench runs (its plan of runs is built before the first run starts).
MAX_SEEDS = 1000
#: Seeds lie in [0, MAX_SEED], the range every generator sslzoo seeds accepts.
MAX_SEED = 2**32 - 1


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


#: Upper bounds of the options that count a run's loops (seeds have :data:`MAX_SEEDS`): a larger value
#: is a typo that would run until killed.
LOOP_LIMITS = {"epochs": 100_000, "max_rounds": 100_000}


def check_loops(strategy: Strategy) -> None:
    """The strategy's epochs per round and rounds must be at most their :data:`LOOP_LIMITS`."""
    for key, value in strategy.resolved_options().items():
        limit = LOOP_LIMITS.get(key.rpartition(".")[2])
        if limit is not None and isinstance(value, int) and value > limit:
            raise OptionError(f"option {key}={value} of strategy {strategy.name!r} is not allowed: it must be at most "
                              f"{limit}")


Built = list[tuple[RunSpec, Strategy]]


@dataclass(frozen=True)
class Part:
    """One part of a grid of runs: the strategies run at one label count, their options, the preset
    name their records carry and the directory of their store (a preset run at several label counts
    is one part per count, each with its own store)."""

    labels: int = 1000
    strategies: str | Sequence[str] | None = None
    options: Mapping[str, Any] | None = None
    preset: str | None = None
    out: str | os.PathLike | RecordStore | None = None


def run(strategies: str | Sequence[str] | None = None, dataset: str = DEFAULT_BENCH["dataset"], *,
        labels: int = 1000, seed: int = 0, seeds: int = 1, model: str | None = None, device: str = "auto",
        split: str = "balanced", exclude_classes: Sequence[int] = (), options: Mapping[str, Any] | None = None,
        dataset_options: Mapping[str, Any] | None = None, registry: Registry | None = None,
        progress: Callable[[RunSpec], Progress | None] | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        plan: Callable[[Built], Built] | None = None,
        out: str | os.PathLike | RecordStore | None = None, resume: bool = False,
        preset: str | None = None, control: bool = False, executor: Executor | None = None) -> list[dict[str, Any]]:
    """Run every strategy for seeds ``seed .. seed+seeds-1`` and return the records.

    ``dataset`` is a registered dataset's name, or a path to the user's data (a folder of images,
    a ``.npz`` or ``.csv`` file: :func:`~sslzoo.contract.dataset.resolve_dataset`).

    ``strategies=None`` runs the default comparison, :data:`DEFAULT_BENCH`, with its scaled-down
    schedules under ``options`` (what ``sslzoo bench`` runs without ``--strategy``).

    Each record is passed to ``on_record`` as soon as it is finished, so a later failure never
    loses it. ``progress(spec)`` may return a per-run progress callback. ``plan`` gets every
    (spec, built strategy) pair before the first run and returns those to run.

    ``out``: a directory (or :class:`~sslzoo.results.store.RecordStore`) where each finished record is
    appended to ``records.jsonl`` at once; with ``resume`` the runs already stored there are not run
    again and their records are returned first.

    ``preset``: the protocol preset these runs belong to (stored in every record, part of the resume key).

    ``control``: also run the control group of each strategy that queries labels, its protocol
    replayed with random queries (:func:`sslzoo.planning.control_group.with_controls`), on the same seeds.

    ``executor``: who runs the runs (:mod:`sslzoo.planning.executor`): this process, one after another (the
    default), local worker processes (:class:`~sslzoo.planning.worker_pool.ProcessExecutor`) or Ray tasks
    (:class:`~sslzoo.planning.ray_cluster.RayExecutor`). Whichever runs them, this process alone writes ``out``,
    each record as it arrives; ``on_record`` sees them in the order they finish, the returned list
    holds them in the planned order. With workers, ``progress`` callbacks get the worker's number as
    ``info["worker"]``.
    """
    return run_grid([Part(labels, strategies, options, preset, out)], dataset, seed=seed, seeds=seeds, model=model,
                    device=device, split=split, exclude_classes=exclude_classes, dataset_options=dataset_options,
                    registry=registry, progress=progress, on_record=on_record,
                    plan=None if plan is None else lambda built, store: plan(built), resume=resume,
                    control=control, executor=executor)[0]


def run_grid(parts: Sequence[Part], dataset: str = DEFAULT_BENCH["dataset"], *, seed: int = 0, seeds: int = 1,
             model: str | None = None, device: str = "auto", split: str = "balanced",
             exclude_classes: Sequence[int] = (), dataset_options: Mapping[str, Any] | None = None,
             registry: Registry | None = None, progress: Callable[[RunSpec], Progress | None] | None = None,
             on_record: Callable[[dict[str, Any]], None] | None = None,
             plan: Callable[[Built, RecordStore | None], Built] | None = None, resume: bool = False,
             control: bool = False, executor: Executor | None = None) -> list[list[dict[str, Any]]]:
    """:func:`run` for several parts at once (a preset's label counts): every part is planned, and
    every strategy built, before the first run; then all their runs go to one executor, so runs of
    different parts run side by side; each record goes to its part's store. ``plan(built, store)``
    is called per part. Returns each part's records."""
    registry = registry or default_registry()
    dataset, dataset_options = resolve_dataset(dataset, dataset_options, registry)
    check_seeds(seed, seeds)
    setup = {"dataset": dataset, "model": model, "device": device, "split": split,
             "exclude_classes": tuple(exclude_classes), "dataset_options": dataset_options or {}}
    planned = [_build(part, setup, range(seed, seed + seeds), control, registry) for part in parts]
    check_label_counts(sorted({part.labels for part in parts}), setup, seed, registry)
    stores = [part.out if isinstance(part.out, RecordStore) or part.out is None else RecordStore(part.out)
              for part in parts]
    with contextlib.ExitStack() as hold:
        todo: list[Built] = []
        for built, store in zip(planned, stores):
            if store is not None:
                hold.enter_context(store.lock())  # one writer per directory, from the plan to the last record
                built = store.plan(built, resume=resume, registry=registry)
            todo.append(plan(built, store) if plan is not None else built)
        runs = [pair for built in todo for pair in built]
        driver = _Driver(runs, [store for built, store in zip(todo, stores) for _ in built], progress, on_record)
        if runs:
            (executor or SerialExecutor()).execute(runs, registry, driver)
    results, first = [], 0
    for built, store in zip(todo, stores):
        results.append((list(store.reused) if store is not None else [])
                       + [driver.records[index] for index in range(first, first + len(built))])
        first += len(built)
    return results


def check_label_counts(counts: Sequence[int], setup: Mapping[str, Any], seed: int, registry: Registry) -> None:
    """With several label counts (a preset's parts), each one's starting labels must be drawable from
    the dataset, read once (for the first seed) and split as the runs split it: a count too large is
    refused before the first run of any part. Every split that draws the largest count draws the
    smaller ones, so that one is checked. One count alone is checked by its first run, before any work."""
    if len(counts) < 2:
        return
    dataset = registry.datasets.get(setup["dataset"]).obj(**setup["dataset_options"])
    y = dataset.load(seed).y_train
    initial_labels(y[y >= 0], max(counts), seed, setup["split"], setup["exclude_classes"])


def _build(part: Part, setup: Mapping[str, Any], seeds: range, control: bool, registry: Registry) -> Built:
    """The part's (spec, strategy) pairs, every strategy built and its options checked."""
    strategies, options = part.strategies, part.options
    if strategies is None:
        strategies, options = DEFAULT_BENCH["strategies"], merge_options(DEFAULT_BENCH["options"], options or {})
    names = [strategies] if isinstance(strategies, str) else list(strategies)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise OptionError(f"strategy {twice[0]!r} is given twice; each strategy runs once per seed "
                          f"(--seeds N runs more)")
    per_strategy = strategy_options(names, dict(options or {}), registry)
    if control:
        per_strategy = with_controls(names, per_strategy, registry)
        names = list(per_strategy)
    specs = [RunSpec(strategy=name, labels=part.labels, seed=s, options=per_strategy[name], preset=part.preset,
                     **{**setup, "dataset_options": dict(setup["dataset_options"])}) for name in names for s in seeds]
    built = [(spec, create_strategy(spec.strategy, registry, **spec.options)) for spec in specs]
    for _, strategy in built[::len(seeds) or 1]:  # one per strategy: the seeds share its options
        check_loops(strategy)
    return built


class _Driver:
    """The driver's side of an executor: each run's progress to its callback, each record to its
    store at once (this process is the stores' only writer), then to ``on_record``."""

    def __init__(self, runs: Built, stores: list[RecordStore | None],
                 progress: Callable[[RunSpec], Progress | None] | None,
                 on_record: Callable[[dict[str, Any]], None] | None) -> None:
        self.runs, self.stores, self.make_progress, self.on_record = runs, stores, progress, on_record
        self.callbacks: dict[int, Progress | None] = {}
        self.workers: dict[int, int] = {}
        self.records: dict[int, Record] = {}

    def started(self, index: int, worker: int) -> None:
        if index not in self.callbacks:  # a run retried after its worker died keeps its callback
            self.callbacks[index] = self.make_progress(self.runs[index][0]) if self.make_progress else None
        self.workers[index] = worker

    def progress(self, index: int, info: dict[str, Any]) -> None:
        callback = self.callbacks.get(index)
        if callback is not None:
            callback({**info, "worker": self.workers[index]})

    def finished(self, index: int, record: Record) -> None:
        store = self.stores[index]
        if store is not None:
            store.append(record)
        self.records[index] = record
        if self.on_record is not None:
            self.on_record(record)


def _mean_of(values: Sequence[Any]) -> float | None:
    """The mean, or None when any value is missing (records from before a field existed)."""
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        return None
    return statistics.fmean(values)


def summarize(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± std of the final test accuracy per (strategy, dataset, starting labels), in first-seen order.

    ``pseudo_ids``: distinct pseudo-labeled ids at the end (None for records from before sslzoo
    counted them); ``pseudo_draws``: pseudo-labels given, a per-step draw counted each time;
    ``patience``: the test-set model selection the runs used (0: none).
    """
    rows = []
    for (strategy, dataset, _), recs in group_by(records, by_keys("strategy", "dataset", "labels")).items():
        mean, std = mean_std([r["test_accuracy"] for r in recs])
        rows.append({
            "strategy": strategy, "dataset": dataset, "seeds": len(recs),
            "accuracy_mean": mean,
            "accuracy_std": std,
            "labels": statistics.fmean(r["oracle_labels"] for r in recs),
            "pseudo_ids": _mean_of([r["curve"][-1].get("pseudo_ids") for r in recs]),
            "pseudo_draws": statistics.fmean(r["curve"][-1]["pseudo_labels"] for r in recs),
            "patience": max(selected_on_test(r) for r in recs),
            "wall_seconds": statistics.fmean(r["wall_seconds"] for r in recs),
        })
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` rows; a strategy selected on the test set is marked
    ``*`` and explained under the table."""
    header = ("strategy", "dataset", "seeds", "test accuracy", "labels", "pseudo-labeled ids", "pseudo-label draws",
              "wall s")
    body = [(r["strategy"] + ("*" if r["patience"] else ""), r["dataset"], str(r["seeds"]),
             plus_minus(100 * r["accuracy_mean"], 100 * r["accuracy_std"], count=r["seeds"]) + " %",
             f"{r['labels']:.0f}",
             "—" if r["pseudo_ids"] is None else f"{r['pseudo_ids']:.0f}", f"{r['pseudo_draws']:.0f}",
             f"{r['wall_seconds']:.1f}") for r in rows]
    lines = text_table(header, body)
    selected = [r["patience"] for r in rows if r["patience"]]
    if selected:
        lines += ["", f"* {selected_on_test_note(selected)}."]
    return "\n".join(lines)
