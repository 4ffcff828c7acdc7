"""Benchmarks: run a plan's strategies × seeds and summarise the records (:func:`sslzoo.run`)."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sslzoo._contract.record import selected_on_test, selected_on_test_note
from sslzoo._contract.registry import Registry, default_registry, resolve_dataset
from sslzoo._datasets.split import initial_labels
from sslzoo._engine.run import Progress, Record, RunSpec
from sslzoo._planning.executor import Executor, SerialExecutor
from sslzoo._planning.plan import DEFAULT_BENCH, Built, Plan
from sslzoo._results.formatting import by_keys, group_by, mean_std, plus_minus, text_table
from sslzoo._results.store import RecordStore
from sslzoo._tracking import Tracking, make_tracking


def run(strategies: str | Sequence[str] | None = None, dataset: str = DEFAULT_BENCH["dataset"], *,
        labels: int = 1000, seed: int = 0, seeds: int = 1, model: str | None = None, device: str = "auto",
        split: str = "balanced", exclude_classes: Sequence[int] = (), options: Mapping[str, Any] | None = None,
        dataset_options: Mapping[str, Any] | None = None, registry: Registry | None = None,
        progress: Callable[[RunSpec], Progress | None] | None = None,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        plan: Callable[[Built], Built] | None = None,
        out: str | os.PathLike | RecordStore | None = None, resume: bool = False,
        preset: str | None = None, control: bool = False, executor: Executor | None = None,
        tracking: str | Sequence[str] | None = None,
        tensorboard_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Run every strategy for seeds ``seed .. seed+seeds-1`` and return the records.

    ``dataset`` is a registered dataset's name, or a path to the user's data (a folder of images,
    a ``.npz`` or ``.csv`` file: :func:`~sslzoo._contract.registry.resolve_dataset`).

    ``strategies=None`` runs the default comparison, :data:`DEFAULT_BENCH`, with its scaled-down
    schedules under ``options`` (what ``sslzoo bench`` runs without ``--strategy``).

    Each record is passed to ``on_record`` as soon as it is finished, so a later failure never
    loses it. ``progress(spec)`` may return a per-run progress callback. ``plan`` gets every
    (spec, built strategy) pair before the first run and returns those to run.

    ``out``: a directory (or :class:`~sslzoo._results.store.RecordStore`) where each finished record is
    appended to ``records.jsonl`` at once; with ``resume`` the runs already stored there are not run
    again and their records are returned first.

    ``preset``: the protocol preset these runs belong to (stored in every record, part of the resume key).

    ``control``: also run the control group of each strategy that queries labels, its protocol
    replayed with random queries (:func:`sslzoo._planning.control_group.with_controls`), on the same seeds.

    ``executor``: who runs the runs (:mod:`sslzoo._planning.executor`): this process, one after another (the
    default), local worker processes (:class:`~sslzoo._planning.worker_pool.ProcessExecutor`) or Ray tasks
    (:class:`~sslzoo._planning.ray_cluster.RayExecutor`). Whichever runs them, this process alone writes ``out``,
    each record as it arrives; ``on_record`` sees them in the order they finish, the returned list
    holds them in the planned order. With workers, ``progress`` callbacks get the worker's number as
    ``info["worker"]``.

    ``tracking``: also log the runs to these trackers (:data:`sslzoo._tracking.TRACKERS`): ``"mlflow"``
    (each run an MLflow run, the grid their parent, at MLflow's ``MLFLOW_TRACKING_URI``) and
    ``"tensorboard"`` (event files under ``tensorboard_dir``, default ``runs``). A tracker that cannot
    start raises :class:`~sslzoo.errors.TrackingError` before any run; one that fails later is a
    :class:`~sslzoo.errors.TrackingWarning`, and every record is kept.
    """
    return run_plan(Plan.of(strategies, dataset, labels=labels, options=options, preset=preset, out=out, seed=seed,
                            seeds=seeds, model=model, device=device, split=split, exclude_classes=exclude_classes,
                            dataset_options=dataset_options, control=control),
                    registry=registry, progress=progress, on_record=on_record,
                    on_plan=None if plan is None else lambda built, store: plan(built), resume=resume,
                    executor=executor,
                    tracking=None if tracking is None else make_tracking(tracking, tensorboard_dir))[0]


def run_plan(plan: Plan, *, registry: Registry | None = None,
             progress: Callable[[RunSpec], Progress | None] | None = None,
             on_record: Callable[[dict[str, Any]], None] | None = None,
             on_plan: Callable[[Built, RecordStore | None], Built] | None = None, resume: bool = False,
             executor: Executor | None = None, tracking: Tracking | None = None) -> list[list[dict[str, Any]]]:
    """Run a :class:`~sslzoo._planning.plan.Plan`: every group is expanded, and every strategy built,
    before the first run; then all their runs go to one executor, so runs of different groups (a
    preset's label counts) run side by side; each record goes to its group's store. ``on_plan(built,
    store)`` is called per group with the runs still to run and returns those to run (see
    :func:`run` for the other arguments). ``tracking`` is opened once the runs to run are known,
    before the first one, and gets each record after its store. Returns each group's records."""
    registry = registry or default_registry()
    planned = plan.expand(registry)
    check_label_counts(sorted({group.labels for group in plan.groups}), plan, registry)
    stores = [group.out if isinstance(group.out, RecordStore) or group.out is None else RecordStore(group.out)
              for group in plan.groups]
    with contextlib.ExitStack() as hold:
        todo: list[Built] = []
        for built, store in zip(planned, stores):
            if store is not None:
                hold.enter_context(store.lock())  # one writer per directory, from the plan to the last record
                built = store.plan(built, resume=resume, registry=registry)
            todo.append(on_plan(built, store) if on_plan is not None else built)
        runs = [pair for built in todo for pair in built]
        driver = _Driver(runs, [store for built, store in zip(todo, stores) for _ in built], progress, on_record,
                         tracking)
        if runs:
            if tracking is not None:
                tracking.open(_grid(plan, runs))
            finished = False
            try:
                (executor or SerialExecutor()).execute(runs, registry, driver)
                finished = True
            finally:
                if tracking is not None:
                    tracking.close(finished)
    results, first = [], 0
    for built, store in zip(todo, stores):
        results.append((list(store.reused) if store is not None else [])
                       + [driver.records[index] for index in range(first, first + len(built))])
        first += len(built)
    return results


def check_label_counts(counts: Sequence[int], plan: Plan, registry: Registry) -> None:
    """With several label counts (a preset's groups), each one's starting labels must be drawable from
    the dataset, read once (for the first seed) and split as the runs split it: a count too large is
    refused before the first run of any group. Every split that draws the largest count draws the
    smaller ones, so that one is checked. One count alone is checked by its first run, before any work."""
    if len(counts) < 2:
        return
    dataset, dataset_options = resolve_dataset(plan.dataset, plan.dataset_options, registry)
    y = registry.datasets.get(dataset).obj(**dataset_options).load(plan.seed).y_train
    initial_labels(y[y >= 0], max(counts), plan.seed, plan.split, plan.exclude_classes)


def _grid(plan: Plan, runs: Built) -> dict[str, Any]:
    """What a tracker is told of a grid before its first run."""
    return {"dataset": plan.dataset, "preset": next((spec.preset for spec, _ in runs if spec.preset), None),
            "strategies": list(dict.fromkeys(spec.strategy for spec, _ in runs)),
            "seeds": sorted({spec.seed for spec, _ in runs}), "runs": len(runs)}


class _Driver:
    """The driver's side of an executor: each run's progress to its callback, each record to its
    store at once (this process is the stores' only writer), then to ``on_record`` and the trackers."""

    def __init__(self, runs: Built, stores: list[RecordStore | None],
                 progress: Callable[[RunSpec], Progress | None] | None,
                 on_record: Callable[[dict[str, Any]], None] | None, tracking: Tracking | None = None) -> None:
        self.runs, self.stores, self.make_progress, self.on_record = runs, stores, progress, on_record
        self.tracking = tracking
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
        if self.tracking is not None:
            self.tracking.log(record)


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
