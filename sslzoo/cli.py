"""The ``sslzoo`` command line: results on stdout, progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from sslzoo import __version__, api
from sslzoo.bench import DEFAULT_BENCH, format_table, run, summarize
from sslzoo.engine import Progress, RunSpec
from sslzoo.errors import SslzooError
from sslzoo.options import parse_assignments
from sslzoo.registry import default_registry
from sslzoo.split import SPLITS


class Group(click.Group):
    """Turns library errors into a one-line message and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SslzooError as exc:
            raise click.ClickException(str(exc)) from None


def _dump(data: Any, target: str) -> None:
    text = json.dumps(data, indent=2)
    if target == "-":
        click.echo(text)
    else:
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


def _tqdm_progress(quiet: bool) -> Callable[[RunSpec], Progress | None]:
    """A progress bar per run on stderr: epochs of the current round, with the loss."""
    from tqdm import tqdm

    def make(spec: RunSpec) -> Progress | None:
        if quiet:
            return None
        bars: list[Any] = []  # created on the first epoch, so a run that fails early prints no bar

        def update(info: dict[str, Any]) -> None:
            if not bars:
                bars.append(tqdm(unit="epoch", file=sys.stderr, leave=False))
            bar = bars[0]
            if info["epoch"] == 1:
                bar.reset(total=info["epochs"])
                bar.set_description(f"{spec.strategy} seed {spec.seed} round {info['round']}")
            bar.set_postfix(loss=f"{info['loss']:.3f}", labels=info["labels"])
            bar.update(1)

        return update

    return make


@click.group(cls=Group)
@click.version_option(__version__, prog_name="sslzoo")
def main() -> None:
    """sslzoo: which label-efficient learning strategy saves you the most labels?"""


@main.command()
@click.option("--strategy", "-s", "strategies", multiple=True,
              help="Strategy to run (repeat to compare). Default: the built-in comparison.")
@click.option("--dataset", default=DEFAULT_BENCH["dataset"], show_default=True, help="Dataset name.")
@click.option("--labels", type=int, default=DEFAULT_BENCH["labels"], show_default=True,
              help="Initially labeled samples.")
@click.option("--seed", type=int, default=DEFAULT_BENCH["seed"], show_default=True, help="First seed.")
@click.option("--seeds", type=int, default=DEFAULT_BENCH["seeds"], show_default=True,
              help="Number of seeds (seed, seed+1, ...).")
@click.option("--epochs", type=int, default=None, help="Epochs per round (default: the dataset's).")
@click.option("--model", default=None, help="Model name (default: the dataset's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--split", type=click.Choice(SPLITS), default="balanced", show_default=True,
              help="How the initial labeled set is drawn.")
@click.option("--exclude-class", "exclude_classes", type=int, multiple=True,
              help="Leave this class out of the initial labeled set (repeatable).")
@click.option("--budget", type=int, default=None, help="Active learning: oracle labels to reach.")
@click.option("--query-size", type=int, default=None, help="Active learning: ids queried per round.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Strategy option (NAME.KEY=VALUE for one strategy only).")
@click.option("--dataset-option", "-d", "dataset_options", multiple=True, metavar="KEY=VALUE",
              help="Dataset option, e.g. -d noise=0.2 for moons.")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="A torchvision root holding MNIST/raw/ instead of the bundled files.")
@click.option("--json", "json_out", default=None, metavar="PATH|-",
              help="Write the records as a JSON array to PATH, or to stdout with '-' instead of the table.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def bench(strategies: Sequence[str], dataset: str, labels: int, seed: int, seeds: int, epochs: int | None,
          model: str | None, device: str, split: str, exclude_classes: Sequence[int], budget: int | None,
          query_size: int | None, options: Sequence[str], dataset_options: Sequence[str], data_dir: str | None,
          json_out: str | None, quiet: bool) -> None:
    """Run strategies × seeds on a dataset and print mean ± std test accuracy per strategy."""
    opts: dict[str, Any] = dict(parse_assignments(options))
    for key, value in (("epochs", epochs), ("budget", budget), ("query_size", query_size)):
        if value is not None:
            opts[key] = value
    dopts: dict[str, Any] = dict(parse_assignments(dataset_options))
    if data_dir is not None:
        dopts["data_dir"] = data_dir
    finished: list[dict[str, Any]] = []

    def keep(record: dict[str, Any]) -> None:
        finished.append(record)
        if json_out not in (None, "-"):
            _dump(finished, json_out)  # every finished record is on disk before the next run starts

    try:
        run(list(strategies) or list(DEFAULT_BENCH["strategies"]), dataset, labels=labels, seed=seed, seeds=seeds,
            model=model, device=device, split=split, exclude_classes=exclude_classes, options=opts,
            dataset_options=dopts, progress=_tqdm_progress(quiet), on_record=keep)
    finally:
        if json_out == "-":
            _dump(finished, "-")
        elif finished:
            click.echo(format_table(summarize(finished)))
    notes = {r["termination"] for r in finished} & {"pool_empty"}
    if notes:
        click.echo("note: the unlabeled pool ran out before the budget was met", err=True)


def _listing(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    if as_json:
        _dump(rows, "-")
        return
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for r in rows:
        click.echo("  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths)).rstrip())


def _plugin_of(table: Any, name: str) -> str:
    info = table.get(name).plugin
    return f"{info.name} ({info.distribution})" if info.distribution and info.distribution != "sslzoo" else info.name


@main.command()
@click.argument("pattern", default="*")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def strategies(pattern: str, as_json: bool) -> None:
    """List the registered strategies (glob PATTERN)."""
    table = default_registry().strategies
    rows = [{**api.get_strategy(n).describe(), "plugin": _plugin_of(table, n)} for n in api.list_strategies(pattern)]
    _listing(rows, as_json, ("name", "family", "plugin", "summary"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def datasets(as_json: bool) -> None:
    """List the registered datasets."""
    table = default_registry().datasets
    rows = [{**api.get_dataset(n).describe(), "plugin": _plugin_of(table, n)} for n in api.list_datasets()]
    _listing(rows, as_json, ("name", "num_classes", "default_model", "plugin", "summary"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def models(as_json: bool) -> None:
    """List the registered models."""
    table = default_registry().models
    rows = [{"name": n, "summary": api.get_model(n).summary, "plugin": _plugin_of(table, n)}
            for n in api.list_models()]
    _listing(rows, as_json, ("name", "plugin", "summary"))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List the loaded plugins with their distribution, version and hooks."""
    rows = [p.as_dict() for p in default_registry().plugins.list()]
    for r in rows:
        r["hooks"] = ",".join(r["hooks"]) if not as_json else r["hooks"]
    _listing(rows, as_json, ("name", "distribution", "version", "hooks"))
