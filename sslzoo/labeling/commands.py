"""``sslzoo label``: the labeling session's commands (results on stdout, progress on stderr)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from sslzoo._contract.options import parse_assignments
from sslzoo._engine.pretraining import NOTE
from sslzoo._engine.run import Progress
from sslzoo._reports.reporting import boost_text
from sslzoo._results.formatting import text_table
from sslzoo.labeling.replay import REPORT_DIR
from sslzoo.labeling.replay import report as write_report
from sslzoo.labeling.session import Round, Session, round_size
from sslzoo.labeling.simulated import SimulatedLabeler, simulate

DIRECTORY = click.argument("directory", type=click.Path(file_okay=False))


def _notify(quiet: bool) -> Any:
    return (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))


def _epochs(quiet: bool) -> Progress | None:
    """A progress bar of the training's epochs on a terminal's stderr, and the lines a training reports
    for the log (its pretraining stage's) on any stderr; nothing with ``quiet``."""
    if quiet:
        return None
    if not sys.stderr.isatty():
        return lambda info: click.echo(info[NOTE], err=True) if NOTE in info else None
    from tqdm import tqdm

    bars: list[Any] = []

    def update(info: dict[str, Any]) -> None:
        if NOTE in info:
            tqdm.write(info[NOTE], file=sys.stderr)
            return
        if not bars:
            bars.append(tqdm(total=info["epochs"], unit="epoch", file=sys.stderr, leave=False, desc="training"))
        bars[0].set_postfix(loss=f"{info['loss']:.3f}", refresh=False)
        bars[0].update(1)

    return update


def _open(directory: str, quiet: bool = False) -> Session:
    return Session(directory, progress=_epochs(quiet), notify=_notify(quiet))


def _accuracy(entry: dict[str, Any]) -> str:
    value = entry["test_accuracy"]
    return "no labeled test split" if value is None else f"test accuracy {100 * value:.2f} %"


def _training_line(entry: dict[str, Any]) -> str:
    return f"training {entry['training']}: {entry['labels']} labels, {_accuracy(entry)}"


def _stop_line(stop: dict[str, Any]) -> str:
    """The verdict of a session's stopping criterion, once it fired (:meth:`Session.stopped`)."""
    return (f"you may stop: {stop['criterion']} fired after training {stop['training']} ({stop['labels']} labels): "
            f"{stop['why']}")


@click.group()
def label() -> None:
    """Label your data with a person in the loop, across days: start a session, ask for the next
    items to label, import the labels, repeat (the model retrains on them)."""


@label.command()
@DIRECTORY
@click.option("--dataset", required=True,
              help="Dataset name, or your data: a folder of images (one folder per class), a .npz or .csv file.")
@click.option("--strategy", "-s", required=True, help="Active-learning strategy that chooses the queries.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE", help="Strategy option.")
@click.option("--dataset-option", "-d", "dataset_options", multiple=True, metavar="KEY=VALUE", help="Dataset option.")
@click.option("--model", default=None, help="Model name (default: the dataset's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the training and the selection.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--control", default=None, metavar="FRACTION",
              help="Each round, also ask about FRACTION × K items (0 < FRACTION <= 1) drawn at random and mixed "
                   "into the K queries: the control group. The strategy never trains on their labels; `sslzoo "
                   "label report` replays a random-query learner on them and states the efficiency boost.")
@click.option("--holdout", default=None, metavar="N",
              help="Set N of your data's labels aside to measure every training on (for data whose test split "
                   "has no labels).")
@click.option("--stop", default=None, metavar="NAME[:KEY=VALUE,...]",
              help="A stopping criterion (sslzoo stopping-criteria lists them), judged after every training: once "
                   "it fires, `label next` and `label status` say so (\"you may stop: ...\") and the rounds go on "
                   "while you label. The same as -o stop=...")
def start(directory: str, dataset: str, strategy: str, options: Sequence[str], dataset_options: Sequence[str],
          model: str | None, seed: int, device: str, control: str | None, holdout: str | None,
          stop: str | None) -> None:
    """Start a labeling session in DIRECTORY (new or empty)."""
    given = parse_assignments(options)
    if stop is not None:
        clash = [key for key in given if key.rpartition(".")[2] == "stop"]
        if clash:
            raise click.ClickException(f"--stop {stop} and -o {clash[0]}={given[clash[0]]} both set stop; give one "
                                       f"of them")
        given["stop"] = stop
    session = Session.start(directory, dataset, strategy, options=given,
                            dataset_options=parse_assignments(dataset_options), model=model, seed=seed, device=device,
                            control=control, holdout=holdout)
    status = session.status()
    aside = f", {len(session.holdout)} more held out" if session.holdout else ""
    click.echo(f"started a labeling session in {directory}: dataset {status['dataset']} ({status['items']} items, "
               f"{len(status['classes'])} classes, {status['labels']} labeled{aside}), strategy {status['strategy']}, "
               f"model {status['model']}")
    click.echo(f"trainings are measured on {status['evaluated_on']}")
    if session.control is not None:
        group = session.control
        click.echo(f"control group: {group.strategy}; each round with a model also asks about {group.fraction:g} × "
                   f"its queries more items, drawn at random and mixed in ({group.size(20)} more with -k 20, fewer "
                   f"when a draw is labeled already): the cost of measuring the strategy against random queries; "
                   f"{strategy} never trains on their labels")
    if session.stop_option:
        click.echo(f"stopping criterion: {session.stop_option}, judged after every training; `sslzoo label next` "
                   f"says when it fires (you decide whether to stop)")
    click.echo(f"next: sslzoo label next {directory} -k 20")


def _round_lines(asked: Round) -> list[str]:
    controls = sum(1 for item in asked.items if item["control"])
    head = f"round {asked.number}: {round_size(len(asked.items) - controls, asked.strategy, controls)}" + (
        f" (guesses of training {asked.training})" if asked.training is not None else " (no model yet: a cold start)")
    if controls:
        head += ", the control items mixed in"
    if asked.reused:
        head += ", asked before; label them and import the labels"
    named = any(item["item"] for item in asked.items)
    columns = ("rank", "id", *(("item",) if named else ()), "guess", "confidence", "difficulty")
    rows = [[str(rank), str(item["id"]), *((item["item"] or "-",) if named else ()), item["guess"] or "-",
             "-" if item["confidence"] is None else f"{item['confidence']:.4f}", item["difficulty"] or "-"]
            for rank, item in enumerate(asked.items, start=1)]
    return [head, *text_table(columns, rows), *(str(f) for f in asked.files)]


@label.command(name="next")
@DIRECTORY
@click.option("-k", "k", type=int, default=20, show_default=True, help="How many items to ask for.")
@click.option("--json", "as_json", is_flag=True, help="The round as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def next_(directory: str, k: int, as_json: bool, quiet: bool) -> None:
    """Ask for the next K items to label: retrain on new labels first, then let the strategy choose.
    Writes the round's queries.csv (fill in its label column), queries.png, Label Studio tasks and
    config, and autolabels.csv (the model's guesses for the rest, hard ones first)."""
    asked = _open(directory, quiet).next(k)
    if as_json:
        click.echo(json.dumps({"round": asked.number, "strategy": asked.strategy, "training": asked.training,
                               "reused": asked.reused, "items": asked.items, "control": asked.control,
                               "files": [str(f) for f in asked.files], "stop": asked.stop}, indent=2))
        return
    if asked.stop is not None:
        click.echo(_stop_line(asked.stop))
    for line in _round_lines(asked):
        click.echo(line)


@label.command(name="import")
@DIRECTORY
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--labeler", default=None, help="Who labeled (default: your login name; a Label Studio export "
                                              "names its annotators).")
def import_(directory: str, file: str, labeler: str | None) -> None:
    """Import labels from FILE: a CSV with id and label columns (a round's queries.csv filled in) or a
    Label Studio JSON export. All or nothing: a label that does not fit changes nothing."""
    imported = _open(directory).import_labels(file, labeler=labeler)
    batch = imported.batch
    by = ", ".join(sorted({x.by for x in batch.labels}))
    note = f"; {imported.already} were already in the ledger" if imported.already else ""
    control = f", {len(batch.control)} of them control labels" if batch.control else ""
    click.echo(f"imported {len(batch.labels)} labels{control} from {file} as batch {batch.number} (by {by}){note}")
    click.echo(f"next: sslzoo label next {directory} (retrains on them)")


@label.command()
@DIRECTORY
@click.option("--force", is_flag=True, help="Train even if the model learned from every label already.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def train(directory: str, force: bool, quiet: bool) -> None:
    """Retrain on every label held (`label next` does this itself when there are new labels)."""
    session = _open(directory, quiet)
    entry = session.train(force=force)
    if entry is None:
        click.echo("the model is up to date: it learned from every label held (--force trains again)")
        return
    click.echo(_training_line(entry))
    stop = session.stopped()
    if stop is not None:
        click.echo(_stop_line(stop))


@label.command()
@DIRECTORY
@click.option("--json", "as_json", is_flag=True, help="JSON instead of text.")
def status(directory: str, as_json: bool) -> None:
    """Where a session stands: labels per class, imports, trainings, rounds, items waiting for a label."""
    state = Session(directory).status()
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return
    click.echo(f"{state['directory']}: dataset {state['dataset']} ({state['items']} items), strategy "
               f"{state['strategy']}, model {state['model']}")
    click.echo(f"labels: {state['labels']} ("
               + ", ".join(f"{c}: {n}" for c, n in state["labels_per_class"].items()) + f"); trainings are measured "
               f"on {state['evaluated_on']}")
    for batch in state["batches"]:
        control = f" ({batch['control']} control labels)" if batch["control"] else ""
        click.echo(f"batch {batch['batch']}: {batch['labels']} labels{control} from {batch['source']} by "
                   f"{', '.join(batch['by'])} on {batch['imported']}")
    for entry in state["trainings"]:
        click.echo(_training_line(entry))
    if state["rounds"]:
        last = state["rounds"][-1]
        click.echo(f"round {last['round']}: {round_size(last['queries'], last['strategy'], last['controls'])}, "
                   f"{len(state['pending'])} waiting for a label")
    if state["labels"] and not state["model_current"]:
        click.echo("new labels since the last training: `sslzoo label next` or `sslzoo label train` retrains")
    if state["stop"] is not None:
        click.echo(_stop_line(state["stop"]))
    control = state["control"]
    if control is not None:
        click.echo(f"control group ({control['strategy']}, {control['fraction']:g} × each round's queries): "
                   f"{control['drawn']} items drawn, {control['asked']} of them asked for it alone, "
                   f"{control['labels']} control labels (never trained on by {state['strategy']}); its learner holds "
                   f"{control['learner_labels']} labels "
                   f"and replayed {control['replayed']} of {len(state['trainings'])} trainings "
                   f"(`sslzoo label report` replays the rest)")


@label.command(name="simulate")
@DIRECTORY
@click.option("--rounds", type=int, default=1, show_default=True, help="Rounds of queries to answer.")
@click.option("-k", "k", type=int, default=20, show_default=True, help="Items asked for per round.")
@click.option("--noise", type=float, default=0.0, show_default=True,
              help="Probability that an answer is a wrong class (drawn once per item).")
@click.option("--labeler-seed", type=int, default=0, show_default=True, help="Seed of the wrong answers.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def simulate_(directory: str, rounds: int, k: int, noise: float, labeler_seed: int, quiet: bool) -> None:
    """Answer ROUNDS rounds of queries with the dataset's hidden labels, as a person would: fill in
    each round's queries.csv, import it; then retrain on the answers."""
    session = _open(directory, quiet)
    for entry in simulate(session, SimulatedLabeler(session, noise, labeler_seed), rounds, k):
        click.echo(_training_line(entry))
    stop = session.stopped()
    if stop is not None:
        click.echo(_stop_line(stop))


@label.command(name="report")
@DIRECTORY
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help=f"Directory for report.md, the figures and records.jsonl (default: DIRECTORY/{REPORT_DIR}).")
@click.option("--json", "as_json", is_flag=True, help="What was written, and the efficiency boost, as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def report_(directory: str, out_dir: str | None, as_json: bool, quiet: bool) -> None:
    """Write the session's report, as `sslzoo report` does: learning curves, precision and recall by
    class and, for a session started with --control, the strategy's efficiency boost over its control
    group. The control group's learner is first replayed at every training not replayed yet, on the
    labels people gave for its start and its draws. The records go beside the report."""
    written = write_report(_open(directory, quiet), out_dir)
    if as_json:
        click.echo(json.dumps({"markdown": str(written.markdown), "figures": [str(f) for f in written.figures],
                               "control_group": written.control_group, "notes": written.notes}, indent=2))
        return
    for row in written.control_group:
        labels = "never" if row["labels"] is None else f"with {row['labels']:.0f} labels"
        click.echo(f"efficiency boost of {row['strategy']} over its control group {row['control']}: {boost_text(row)} "
                   f"({row['control']} reached {100 * row['control_accuracy']:.2f} % with "
                   f"{row['control_labels']:.0f} labels, {row['strategy']} reached it {labels})")
    click.echo(str(written.markdown))
    for figure in written.figures:
        click.echo(str(figure))
