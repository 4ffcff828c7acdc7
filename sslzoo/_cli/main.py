"""The ``sslzoo`` command line: results on stdout, progress on stderr."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import click
from click.core import ParameterSource

from sslzoo._contract.options import parse_assignments
from sslzoo._contract.plugins import BUILT_IN, PluginInfo
from sslzoo._contract.recipe import Recipe
from sslzoo._contract.registry import Table, default_registry
from sslzoo._datasets.split import SPLITS
from sslzoo._engine.pretraining import NOTE
from sslzoo._engine.run import Progress, RunSpec
from sslzoo._files import replace_file, unwritable
from sslzoo._planning.bench import format_table, run_plan, summarize
from sslzoo._planning.executor import SerialExecutor
from sslzoo._planning.executor_choice import EXECUTORS, make_executor
from sslzoo._planning.plan import DEFAULT_BENCH, Plan, overridden, preset_plan
from sslzoo._planning.preset import get_preset, list_presets, load_file, validate
from sslzoo._reports import write_results
from sslzoo._reports.comparison import compare as compare_records
from sslzoo._reports.reporting import report as write_report
from sslzoo._results.formatting import text_table
from sslzoo._results.store import RecordStore
from sslzoo._tracking import TRACKERS, make_tracking
from sslzoo._version import __version__
from sslzoo.errors import ResultsError, SslzooError, SslzooWarning


class Group(click.Group):
    """Turns library errors into a one-line message and exit code 1, never a traceback, and
    sslzoo's warnings into one ``warning:`` line on stderr."""

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings():
            shown = warnings.showwarning

            def one_line(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
                if issubclass(category, SslzooWarning):
                    click.echo(f"warning: {message}", err=True)
                else:
                    shown(message, category, *args, **kwargs)

            warnings.showwarning = one_line
            try:
                with _terminate_as_interrupt():
                    return super().invoke(ctx)
            except SslzooError as exc:
                raise click.ClickException(str(exc)) from None
            except KeyboardInterrupt as stop:
                how = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
                click.echo(f"{how}: every finished run's record is kept; with --out DIR, the same command with "
                           f"--resume runs the rest", err=True)
                raise click.Abort() from None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that a terminated command stops as an interrupted one."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _dump(data: Any, target: str) -> None:
    """``data`` as JSON on stdout (``-``) or in what ``target`` names, replaced whole (a crash while
    writing leaves the previous version; a link or a device is written through, :func:`replace_file`)."""
    text = json.dumps(data, indent=2)
    if target == "-":
        click.echo(text)
        return
    replace_file(target, (text + "\n").encode("utf-8"), ResultsError)


def _check_writable(target: str, flag: str) -> None:
    """A file the command will write must be writable before any run starts."""
    if os.path.isdir(target):
        raise click.ClickException(f"{flag} {target}: is a directory; give a file name such as {target}/records.json")
    refused = unwritable(target)
    if refused:
        raise click.ClickException(f"{flag} {target}: {refused}")
    parent = os.path.dirname(target) or "."
    if not os.path.isdir(parent):
        raise click.ClickException(f"{flag} {target}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (os.path.exists(target) and not os.access(target, os.W_OK)):
        raise click.ClickException(f"{flag} {target}: not writable")


def _check_flags(options: Sequence[str], flags: dict[str, Any]) -> None:
    """``--epochs N`` (and ``--budget``, ``--query-size``) with ``-o epochs=...`` is ambiguous: refuse it."""
    given = parse_assignments(options)
    for key, value in flags.items():
        clash = [k for k in given if k.rpartition(".")[2] == key]
        if value is not None and clash:
            raise click.ClickException(f"--{key.replace('_', '-')} {value} and -o {clash[0]}={given[clash[0]]} "
                                       f"both set {key}; give one of them")


class _Overall:
    """Where a bench stands across its runs: how many there are, started and finished, and an ETA
    from the pace at which runs finish."""

    def __init__(self) -> None:
        self.total = self.index = self.finished = 0
        self.first_started = self.last_finished = 0.0

    def plan(self, built: list[Any]) -> list[Any]:
        self.total += len(built)
        return built

    def start(self) -> int:
        """A run started: its number, 1 .. total."""
        self.index += 1
        if self.index == 1:
            self.first_started = self.last_finished = time.monotonic()
        return self.index

    def finish(self) -> None:
        self.finished += 1
        self.last_finished = time.monotonic()

    def position(self) -> str:
        """``[k/n]``: runs finished, of how many."""
        return f"[{self.finished}/{self.total}]" if self.total else ""

    def label(self, index: int) -> str:
        """``[i/n] ETA ...``: run ``index`` and the time the bench has left, from the finished runs."""
        text = f"[{index}/{self.total}]" if self.total else ""
        if self.finished > 0:
            per_run = (self.last_finished - self.first_started) / self.finished
            left = per_run * (self.total - self.finished) - (time.monotonic() - self.last_finished)
            text += f" ETA {_duration(max(0.0, left))}"
        return text


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _on_terminal() -> bool:
    """Whether stderr is a terminal (progress bars) rather than a log or a file (a line per run)."""
    return sys.stderr.isatty()


class _Bars:
    """Progress on stderr, with ``show``: a bar per worker with the epochs of its run (the round, the
    loss, which run of how many, the ETA of the bench); with ``grid`` (several runs at once) a bar
    of the grid's finished runs above them. Every run counts in ``overall``, shown or not. With
    ``notes``, the lines a run reports for the log (its pretraining stage's) go to stderr, above the
    bars or without them."""

    def __init__(self, overall: _Overall, show: bool, grid: bool, notes: bool = False) -> None:
        self.overall, self.show, self.grid, self.notes = overall, show, grid, notes
        self.runs: Any = None
        self.epochs: dict[int, Any] = {}  # worker → its bar, made on its first epoch

    def plan(self, built: list[Any]) -> list[Any]:
        self.overall.plan(built)
        if self.show and self.grid:
            from tqdm import tqdm

            if self.runs is None:
                self.runs = tqdm(total=self.overall.total, unit="run", desc="runs", file=sys.stderr, leave=False,
                                 position=0)
            else:  # the next part of the grid: every part is planned before the first run
                self.runs.reset(total=self.overall.total)
        return built

    def start(self, spec: RunSpec) -> Progress | None:
        """The progress callback of a run that starts (``sslzoo.run``'s ``progress``)."""
        index = self.overall.start()

        def note(info: dict[str, Any]) -> None:
            if NOTE in info and self.notes:
                click.echo(f"{spec.strategy} seed {spec.seed}: {info[NOTE]}", err=True)

        if not self.show:
            return note

        def update(info: dict[str, Any]) -> None:
            from tqdm import tqdm

            if NOTE in info:
                if self.notes:
                    tqdm.write(f"{spec.strategy} seed {spec.seed}: {info[NOTE]}", file=sys.stderr)
                return
            worker = info.get("worker", 0)
            if worker not in self.epochs:
                self.epochs[worker] = tqdm(unit="epoch", file=sys.stderr, leave=False, position=worker + self.grid)
            bar = self.epochs[worker]
            if info["epoch"] == 1:
                bar.reset(total=info["epochs"])
            bar.set_description(f"{self.overall.label(index)} {spec.strategy} seed {spec.seed} round {info['round']}",
                                refresh=False)
            bar.set_postfix(loss=f"{info['loss']:.3f}", labels=info["labels"])
            bar.update(1)

        return update

    def finish(self) -> None:
        self.overall.finish()
        if self.runs is not None:
            self.runs.update(1)

    def close(self) -> None:
        for bar in [*self.epochs.values(), self.runs]:
            if bar is not None:
                bar.close()


def _finished_line(record: dict[str, Any], overall: _Overall) -> str:
    """One line for a finished run, where no progress bar is drawn (stderr is not a terminal)."""
    return (f"{overall.position()} {record['strategy']} seed {record['seed']}: "
            f"{100 * record['test_accuracy']:.2f} % test accuracy, {record['oracle_labels']} oracle labels, "
            f"{record['wall_seconds']:.1f} s").lstrip()


@click.group(cls=Group)
@click.version_option(__version__, prog_name="sslzoo")
def main() -> None:
    """sslzoo: which label-efficient learning strategy saves you the most labels?"""


@main.command()
@click.option("--strategy", "-s", "strategies", multiple=True,
              help="Strategy to run (repeat to compare). Default: supervised, pseudo_label, self_training "
                   "and entropy with scaled-down schedules.")
@click.option("--dataset", default=DEFAULT_BENCH["dataset"], show_default=True,
              help="Dataset name, or your data: a folder of images (one folder per class), a .npz or .csv file.")
@click.option("--labels", type=int, default=DEFAULT_BENCH["labels"], show_default=True,
              help="Initially labeled samples.")
@click.option("--seed", type=int, default=DEFAULT_BENCH["seed"], show_default=True, help="First seed.")
@click.option("--seeds", type=int, default=DEFAULT_BENCH["seeds"], show_default=True,
              help="Number of seeds (seed, seed+1, ...).")
@click.option("--epochs", type=int, default=None, help="Epochs per round (default: the dataset's).")
@click.option("--model", default=None, help="Model name (default: the dataset's).")
@click.option("--pretrain", default=None, metavar="NAME[:KEY=VALUE,...]",
              help="Train the model's backbone self-supervised on the pool before round 0 with this method (sslzoo "
                   "pretrainers), cached by content and reused by every run of the grid; the training option "
                   "`pretrain` (and `pretrain_use=probe` trains only the last layer).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--split", type=click.Choice(SPLITS), default="balanced", show_default=True,
              help="How the initial labeled set is drawn.")
@click.option("--exclude-class", "exclude_classes", type=int, multiple=True,
              help="Leave this class out of the initial labeled set (repeatable).")
@click.option("--budget", type=int, default=None, help="Active learning: oracle labels to reach.")
@click.option("--query-size", type=int, default=None, help="Active learning: ids queried per round.")
@click.option("--stop", default=None, metavar="NAME[:KEY=VALUE,...]",
              help="Active learning: end a run when this stopping criterion fires (sslzoo stopping-criteria); the "
                   "record says the round and why.")
@click.option("--watch", "watch", multiple=True, metavar="NAME[:KEY=VALUE,...]",
              help="Active learning: also ask this stopping criterion after each round without ending the run "
                   "(repeatable; the training option `watch`); the record says the round it first fired on, for "
                   "the stopping study in `sslzoo compare` and `sslzoo report`.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Strategy option (NAME.KEY=VALUE for one strategy only).")
@click.option("--dataset-option", "-d", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Dataset option, e.g. -d noise=0.2 for moons.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="A torchvision root: MNIST/raw/ (instead of the bundled files), FashionMNIST/raw/, KMNIST/raw/ "
                   "or cifar-10-batches-py/.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON array instead of the table.")
@click.option("--json-out", "json_out", default=None, metavar="PATH",
              help="Also write the records as a JSON array to PATH, rewritten as each run finishes.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Append each finished record to DIR/records.jsonl at once (crash-safe).")
@click.option("--resume", is_flag=True,
              help="With --out: skip the runs whose records are already in DIR, run the rest.")
@click.option("--quiet", "-q", is_flag=True,
              help="No progress on stderr (without it: a progress bar per run on a terminal, one line per "
                   "finished run elsewhere).")
@click.option("--preset", default=None, metavar="NAME",
              help="Run a published protocol (see `sslzoo presets`); explicit flags override its values.")
@click.option("--config", "config", default=None, type=click.Path(dir_okay=False), metavar="FILE.toml",
              help="Run your own protocol file, in the preset format.")
@click.option("--scaled", is_flag=True, help="With --preset/--config: the CPU-sized variant (its [scaled] table).")
@click.option("--ci", "ci_size", is_flag=True,
              help="With --preset/--config: the CI-sized variant ([scaled] then [ci]).")
@click.option("--control", is_flag=True,
              help="Also run the control group: each active learner's protocol replayed with random queries "
                   "(random, or random+B for A+B), for the efficiency boost in `sslzoo report`.")
@click.option("--workers", type=int, default=1, show_default=True, metavar="N",
              help="Run N runs at once in local worker processes, each with its share of the CPU cores as torch "
                   "threads.")
@click.option("--executor", "executor_kind", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="local: on this machine (serially, or --workers N); ray: each run a Ray task on a Ray cluster "
                   "(pip install 'sslzoo[ray]').")
@click.option("--ray-address", default=None, metavar="ADDRESS",
              help="With --executor ray: the Ray cluster to run on (default: RAY_ADDRESS, else a Ray instance "
                   "started here for the bench).")
@click.option("--cpus-per-run", type=float, default=None,
              help="With --executor ray: CPUs each run asks for (its torch threads)  [default: 1]")
@click.option("--gpus-per-run", type=float, default=None,
              help="With --executor ray: GPUs each run asks for (a fraction shares a GPU)  [default: 0]")
@click.option("--retries", type=int, default=None,
              help="With --workers or --executor ray: how many times a run whose worker died runs again; then it "
                   "is reported and the rest go on  [default: 1]")
@click.option("--in-process", is_flag=True,
              help="For debugging: each run's learner (the strategy) in this process, beside the hidden labels, "
                   "instead of a process of its own; the records say so (\"judge\": \"in-process\").")
@click.option("--track", "track", type=click.Choice(TRACKERS), multiple=True,
              help="Also log each run to a tracker (repeatable): mlflow (each run an MLflow run, the grid their "
                   "parent, at MLFLOW_TRACKING_URI; pip install 'sslzoo[mlflow]') or tensorboard (event files under "
                   "--tensorboard-dir; pip install 'sslzoo[tensorboard]').")
@click.option("--tensorboard-dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="With --track tensorboard: where the event files go, a folder per grid  [default: runs]")
def bench(strategies: Sequence[str], dataset: str, labels: int, seed: int, seeds: int, epochs: int | None,
          model: str | None, device: str, split: str, exclude_classes: Sequence[int], budget: int | None,
          query_size: int | None, stop: str | None, watch: Sequence[str], options: Sequence[str],
          dataset_options: Sequence[str],
          data_dir: str | None, as_json: bool, json_out: str | None, out_dir: str | None, resume: bool, quiet: bool,
          preset: str | None = None, config: str | None = None, scaled: bool = False, ci_size: bool = False,
          control: bool = False, workers: int = 1, executor_kind: str = "local", ray_address: str | None = None,
          cpus_per_run: float | None = None, gpus_per_run: float | None = None, retries: int | None = None,
          in_process: bool = False, track: Sequence[str] = (), tensorboard_dir: str | None = None,
          pretrain: str | None = None) -> None:
    """Run strategies × seeds on a dataset and print mean ± std test accuracy per strategy."""
    watched = ";".join(watch) or None  # --watch A --watch B is -o watch='A;B'
    _check_flags(options, {"epochs": epochs, "budget": budget, "query_size": query_size, "stop": stop,
                           "watch": watched})
    if json_out is not None:
        _check_writable(json_out, "--json-out")
    if scaled and ci_size:
        raise click.UsageError("give --scaled or --ci, not both")
    if (scaled or ci_size) and preset is None and config is None:
        raise click.UsageError("--scaled and --ci need --preset NAME or --config FILE")
    opts: dict[str, Any] = dict(parse_assignments(options))
    for key, value in (("epochs", epochs), ("budget", budget), ("query_size", query_size), ("stop", stop),
                       ("watch", watched)):
        if value is not None:  # --epochs N is -o epochs=N: it overrides NAME.epochs too
            opts[key] = value
    if pretrain is not None:  # --pretrain X is -o pretrain=X
        _check_flags(options, {"pretrain": pretrain})
        opts["pretrain"] = pretrain
    dopts: dict[str, Any] = dict(parse_assignments(dataset_options))
    if data_dir is not None:
        dopts["data_dir"] = data_dir
    if resume and out_dir is None:
        raise click.UsageError("--resume needs --out DIR (the directory to resume)")
    if tensorboard_dir is not None and "tensorboard" not in track:
        raise click.UsageError("--tensorboard-dir needs --track tensorboard")
    tracking = make_tracking(track, tensorboard_dir, figures=_report_figures) if track else None
    ctx = click.get_current_context()
    if preset is not None or config is not None:
        plan = _preset_plan(ctx, preset, config, "ci" if ci_size else "scaled" if scaled else "full", opts, dopts,
                            out_dir, quiet)
    else:
        plan = Plan.of(list(strategies) or None, dataset, labels=labels, options=opts, out=out_dir, seed=seed,
                       seeds=seeds, model=model, split=split, exclude_classes=exclude_classes, dataset_options=dopts)
    plan = dataclasses.replace(plan, device=device, control=control)
    executor = make_executor(executor_kind, workers=workers, ray_address=ray_address, cpus_per_run=cpus_per_run,
                             gpus_per_run=gpus_per_run, retries=retries, in_process=in_process)
    finished: list[dict[str, Any]] = []
    overall = _Overall()
    on_terminal = _on_terminal()
    bars = _Bars(overall, show=not quiet and on_terminal, grid=not isinstance(executor, SerialExecutor),
                 notes=not quiet)

    def on_plan(built: list[Any], store: RecordStore | None) -> list[Any]:
        if store is not None:
            for note in store.notes:
                click.echo(f"warning: {note}", err=True)
            finished.extend(store.reused)
            if store.reused and not quiet:
                click.echo(f"resuming {store.path}: {len(store.reused)} of {len(store.reused) + len(built)} runs "
                           f"already done, {len(built)} to run", err=True)
        return bars.plan(built)

    def keep(record: dict[str, Any]) -> None:
        finished.append(record)
        bars.finish()
        if json_out is not None:
            _dump(finished, json_out)  # every finished record is on disk before the next run starts
        if not quiet and not on_terminal:  # a log gets one line per run, not a progress bar's frames
            click.echo(_finished_line(record, overall), err=True)

    try:
        with contextlib.ExitStack() as hold:
            if len(plan.groups) > 1 and out_dir is not None:  # one store per label count, under one locked directory
                hold.enter_context(RecordStore(out_dir).lock())
            results = run_plan(plan, progress=bars.start, on_record=keep, on_plan=on_plan, resume=resume,
                               executor=executor, tracking=tracking)
        finished[:] = [record for part in results for record in part]  # in the planned order
    finally:
        bars.close()
        if as_json and finished:
            _dump(finished, "-")
        elif finished:
            click.echo(format_table(summarize(finished)))
    notes = {r["termination"] for r in finished if "budget" in r["options"]} & {"pool_empty"}
    if notes:
        click.echo("note: the unlabeled pool ran out before the budget was met", err=True)


def _report_figures(records: Sequence[Mapping[str, Any]], folder: Any) -> None:
    """``sslzoo report``'s report.md and figures of a grid's records, for a tracker to attach."""
    write_report(list(records), folder)


def _preset_plan(ctx: click.Context, name: str | None, config: str | None, size: str, options: dict[str, Any],
                 dataset_options: dict[str, Any], out_dir: str | None, quiet: bool) -> Plan:
    """``bench --preset``/``--config``: the protocol's plan under the flags given explicitly."""
    if name is not None and config is not None:
        raise click.UsageError("give --preset NAME or --config FILE, not both")
    protocol = get_preset(name) if name is not None else load_file(str(config))
    validate(protocol)  # a bad value in the file names the file before anything runs
    given = {key for key in ctx.params if ctx.get_parameter_source(key) == ParameterSource.COMMANDLINE}
    plan = preset_plan(protocol, size, strategies=ctx.params["strategies"] if "strategies" in given else None,
                       labels=ctx.params["labels"] if "labels" in given else None, options=options,
                       dataset_options=dataset_options, out=out_dir)
    plan = overridden(plan, **{key: ctx.params[key] for key in ("dataset", "seed", "seeds", "model", "split",
                                                                 "exclude_classes") if key in given})
    if not quiet:
        variant = protocol.variant(size)
        click.echo(f"preset {variant.name}" + ("" if size == "full" else f" ({size}: {variant.note})"), err=True)
    return plan


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON (with the reference numbers and scaled variants).")
def presets(as_json: bool) -> None:
    """List the protocol presets shipped with sslzoo (run one with `sslzoo bench --preset NAME`)."""
    found = [get_preset(n) for n in list_presets()]
    if as_json:
        _dump([p.describe() for p in found], "-")
        return
    rows = [{"name": p.name, "dataset": p.dataset, "labels": ",".join(map(str, p.labels)) + "".join(
                f" ({name}: {','.join(map(str, counts))})" for name, counts in p.labels_for.items()),
             "strategies": ",".join(p.strategies), "title": p.title} for p in found]
    _listing(rows, False, ("name", "dataset", "labels", "strategies", "title"))


@main.command()
@click.argument("baseline", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--tolerance", type=float, default=None, metavar="ACC",
              help="Absolute accuracy drop that counts as a regression (0.02 = 2 points). "
                   "Default: 2 standard errors over the seeds, at least 0.01.")
@click.option("--format", "fmt", type=click.Choice(["plain", "md", "json"]), default="plain", show_default=True,
              help="plain: a table; md: a markdown table for a pull-request comment; json: for machines.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--output", "-O", "output", default=None, type=click.Path(dir_okay=False),
              help="Also write the result to this file (e.g. a PR comment body).")
def compare(baseline: str, new: str, tolerance: float | None, fmt: str, as_json: bool, output: str | None) -> None:
    """Compare NEW records with BASELINE records (files or directories): per strategy and dataset,
    mean ± std over seeds, the delta and a verdict. Exit code 1 when any strategy regressed."""
    result = compare_records(baseline, new, tolerance=tolerance)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    text = result.render("json" if as_json else fmt)
    click.echo(text)
    if output is not None:
        replace_file(output, (text + "\n").encode("utf-8"), ResultsError)
    if result.exit_code:
        sys.exit(result.exit_code)


@main.command()
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for report.md and the PNG figures.")
@click.option("--reference", default="random", show_default=True,
              help="The strategy whose learning curve measures label efficiency.")
@click.option("--json", "as_json", is_flag=True, help="List what was written as JSON.")
def report(results: Sequence[str], out_dir: str, reference: str, as_json: bool) -> None:
    """Write a markdown summary and PNG figures (learning curves, pseudo-labeling, decision
    boundaries, label efficiency) of RESULTS (record files or directories) into --out DIR."""
    written = write_report(list(results), out_dir, reference=reference)
    if as_json:
        _dump({"markdown": str(written.markdown), "figures": [str(f) for f in written.figures],
               "label_efficiency": written.label_efficiency, "control_group": written.control_group,
               "notes": written.notes}, "-")
        return
    click.echo(str(written.markdown))
    for figure in written.figures:
        click.echo(str(figure))


@main.command()
@click.option("--results", "results_dir", default="benchmarks/results", show_default=True,
              type=click.Path(file_okay=False), help="Directory of committed results, one sub-directory per preset.")
@click.option("--out", "page", default="docs/results.md", show_default=True, type=click.Path(dir_okay=False),
              help="The results page to write (figures go to results/ beside it).")
def results(results_dir: str, page: str) -> None:
    """Write the results page: per preset, the published reference beside our mean ± std over seeds,
    with the command, device, seeds, wall time and learning curves, from committed records."""
    for path in write_results(results_dir, page):
        click.echo(str(path))


def _listing(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    if as_json:
        _dump(rows, "-")
        return
    for line in text_table(columns, [[str(r.get(c, "")) for c in columns] for r in rows], rule=False):
        click.echo(line)


def _plugin_label(info: PluginInfo) -> str:
    return f"{info.name} ({info.distribution})" if info.distribution and info.distribution != BUILT_IN else info.name


def _entry_rows(table: Table[Any], names: Sequence[str], describe: Callable[[Any], dict[str, Any]]) -> list[dict]:
    """One row per name of ``table``: ``describe(obj)``, by the name that reaches it (qualified where
    several plugins register it), with its plugin, qualified name and the qualified names it clashes with;
    a note on stderr for each name several plugins register."""
    rows = []
    for name in names:
        entry = table.get(name)
        others = [e.qualified_name for e in table.providers[entry.name] if e is not entry]
        rows.append({**describe(entry.obj), "name": name, "plugin": _plugin_label(entry.plugin),
                     "qualified_name": entry.qualified_name, "clashes_with": others})
    for bare, entries in table.clashes().items():
        if any(table.get(name).name == bare for name in names):
            click.echo(f"note: {len(entries)} plugins register {table.kind} {bare!r}: name one of them as "
                       f"{' or '.join(e.qualified_name for e in entries)}", err=True)
    return rows


@main.command()
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def strategies(pattern: str, as_json: bool) -> None:
    """List the registered strategies (glob PATTERN)."""
    table = default_registry().strategies
    rows = _entry_rows(table, table.names(pattern), lambda cls: cls.describe())
    _listing(rows, as_json, ("name", "family", "plugin", "summary"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def datasets(as_json: bool) -> None:
    """List the registered datasets."""
    table = default_registry().datasets
    rows = _entry_rows(table, table.names(), lambda cls: cls.describe())
    if not as_json:  # classes read from the files
        rows = [{**r, "num_classes": r["num_classes"] or "from files"} for r in rows]
    _listing(rows, as_json, ("name", "num_classes", "default_model", "plugin", "summary"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def models(as_json: bool) -> None:
    """List the registered models."""
    table = default_registry().models
    rows = _entry_rows(table, table.names(), lambda spec: {"name": spec.name, "summary": spec.summary})
    _listing(rows, as_json, ("name", "plugin", "summary"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def recipes(as_json: bool) -> None:
    """List the registered training recipes (the training option `recipe`, e.g. -o recipe=hinton2012)."""
    table, plain = default_registry().recipes, Recipe("", "").settings()
    rows = _entry_rows(table, table.names(), lambda recipe: {
        "name": recipe.name, "summary": recipe.summary, "paper": recipe.paper, "settings": recipe.settings(),
        "sets": ", ".join(f"{k}={v}" for k, v in recipe.settings().items() if v != plain[k]) or "-"})
    _listing(rows, as_json, ("name", "plugin", "sets", "summary"))


@main.command("stopping-criteria")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def stopping_criteria(as_json: bool) -> None:
    """List the registered stopping criteria (bench --stop NAME[:KEY=VALUE,...], the training option `stop`)."""
    table = default_registry().stopping_criteria
    rows = _entry_rows(table, table.names(), lambda cls: cls.describe())
    if not as_json:
        rows = [{**row, "defaults": ", ".join(f"{o['name']}={o['default']}" for o in row["options"])} for row in rows]
    _listing(rows, as_json, ("name", "plugin", "defaults", "summary"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def pretrainers(as_json: bool) -> None:
    """List the registered pretraining methods (bench --pretrain NAME[:KEY=VALUE,...], the training option
    `pretrain`)."""
    table = default_registry().pretrainers
    rows = _entry_rows(table, table.names(), lambda cls: cls.describe())
    if not as_json:
        rows = [{**row, "defaults": ", ".join(f"{o['name']}={o['default']}" for o in row["options"])} for row in rows]
    _listing(rows, as_json, ("name", "plugin", "summary", "defaults"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List the loaded plugins with their distribution, version and hooks.

    Notes say which names another plugin registers too, and which installed plugins are not loaded
    because they do not fit this sslzoo's plugin API."""
    registry = default_registry()
    clashes: dict[str, list[dict[str, Any]]] = {}
    for table in (registry.strategies, registry.datasets, registry.models):
        for bare, entries in table.clashes().items():
            for entry in entries:
                others = [e.plugin.provider for e in entries if e is not entry]
                clashes.setdefault(entry.plugin.name, []).append(
                    {"kind": table.kind, "name": bare, "also_from": others})
    rows = []
    for info in [*registry.plugins.list(), *registry.plugins.skipped]:
        row = {**info.as_dict(), "clashes": clashes.get(info.name, [])}
        if not as_json:
            notes = [f"{c['kind']} {c['name']} also from {', '.join(c['also_from'])}" for c in row["clashes"]]
            row.update(hooks=",".join(info.hooks), notes="; ".join(
                notes + ([f"not loaded: {info.problem}"] if info.problem else [])))
        rows.append(row)
    noted = any(row.get("notes") for row in rows)
    _listing(rows, as_json, ("name", "distribution", "version", "hooks", *(("notes",) if noted else ())))


from sslzoo.labeling.commands import label  # noqa: E402  (the group needs main's error handling only)

main.add_command(label)
