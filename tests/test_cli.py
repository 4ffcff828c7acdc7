"""The command line: tables and JSON on stdout, one-line errors, no lost records."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sslzoo import get_dataset
from sslzoo._cli.main import main
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry, reset_default_registry
from tests.test_engine import TestPlugin

FAST = ["--dataset", "moons", "--labels", "10", "--epochs", "2", "-q"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize(("args", "fragment"), [
    (["bench", "-s", "supervized"], "unknown strategy 'supervized'; did you mean supervised?"),
    (["bench", "--dataset", "mnits"], "unknown dataset 'mnits'; did you mean mnist"),
    (["bench", "--dataset", "moons", "--model", "nlp"], "unknown model 'nlp'; did you mean mlp"),
    (["bench", *FAST, "-o", "lr=fast"], "option lr='fast' of strategy 'supervised' is not allowed"),
    (["bench", "-s", "supervised", *FAST, "-o", "learning_rate=0.1"],
     "valid options: batch_size, epochs, eval_every"),
    (["bench", *FAST, "-o", "treshold=0.9"], "no strategy being run has option 'treshold' (did you mean threshold?)"),
    (["bench", "--dataset", "moons", "--labels", "100000"], "--labels 100000 is larger than"),
    (["bench", "--dataset", "moons", "--labels", "0"], "--labels must be a positive number"),
    (["bench", "--dataset", "moons", "-d", "noise=-1"], "noise='-1' of dataset 'moons' is not allowed"),
])
def test_bad_input_is_one_line_and_no_traceback(args, fragment):
    result = invoke(*args)
    assert result.exit_code == 1
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bench_prints_a_table_with_mean_and_std_over_seeds():
    result = invoke("bench", "-s", "supervised", "--seeds", "2", *FAST)
    assert result.exit_code == 0, result.output
    header, rule, row = result.output.strip().splitlines()
    assert header.split()[:3] == ["strategy", "dataset", "seeds"]
    assert row.split()[:3] == ["supervised", "moons", "2"] and "±" in row


def test_bench_json_prints_the_records_instead_of_the_table():
    result = invoke("bench", "-s", "supervised", "--seeds", "2", "--json", *FAST)
    records = json.loads(result.stdout)
    assert [r["seed"] for r in records] == [0, 1]
    assert all(r["options"]["epochs"] == 2 for r in records)


def _commands(group=main):
    for name, command in group.commands.items():
        yield from _commands(command) if hasattr(command, "commands") else [(name, command)]


def test_json_is_a_flag_with_one_meaning_on_every_command():
    """``--json``: JSON on stdout instead of the table, on every command that has it; a file is
    ``--json-out PATH`` (bench)."""
    with_json = {name: next(p for p in command.params if "--json" in p.opts)
                 for name, command in _commands() if any("--json" in p.opts for p in command.params)}
    assert {"bench", "compare", "report", "strategies", "datasets", "models", "plugins", "presets"} <= set(with_json)
    assert all(option.is_flag for option in with_json.values()), [n for n, o in with_json.items() if not o.is_flag]
    result = invoke("bench", "-s", "supervised", *FAST, "--json", "records.json")
    assert result.exit_code == 2 and "unexpected extra argument (records.json)" in result.output


BENCH = ["bench", "-s", "supervised", "--seeds", "2", "--dataset", "moons", "--labels", "10", "--epochs", "3"]


def test_progress_off_a_terminal_is_one_line_per_finished_run():
    result = CliRunner().invoke(main, BENCH)  # stderr is not a terminal here (a CI log, a file)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert [re.sub(r"[\d.]+ s$", "S", line) for line in lines] == [
        f"[{i}/2] supervised seed {i - 1}: {100 * r:.2f} % test accuracy, 10 oracle labels, S"
        for i, r in enumerate(_accuracies(), start=1)]
    assert "\r" not in result.stderr


def _accuracies() -> list[float]:
    records = json.loads(CliRunner().invoke(main, [*BENCH, "--json", "-q"]).stdout)
    return [r["test_accuracy"] for r in records]


def test_quiet_prints_nothing_on_stderr():
    result = CliRunner().invoke(main, [*BENCH, "-q"])
    assert result.exit_code == 0 and result.stderr == ""


def test_progress_on_a_terminal_is_a_bar_per_run_and_no_lines(monkeypatch):
    monkeypatch.setattr("sslzoo._cli.main._on_terminal", lambda: True)
    result = CliRunner().invoke(main, BENCH)
    assert result.exit_code == 0, result.output
    assert "\r" in result.stderr and "supervised seed 1 round 0" in result.stderr
    assert "test accuracy" not in result.stderr


def test_finished_records_survive_a_later_failing_run(tmp_path):
    reset_default_registry(Registry(make_plugins(load="", extra=(TestPlugin(),))))
    out = tmp_path / "records.json"
    result = invoke("bench", "-s", "supervised", "-s", "nan_at_step", "--dataset", "moons", "--labels", "200",
                    "--epochs", "2", "-o", "batch_size=16", "--json-out", str(out), "-q")
    assert result.exit_code == 1
    assert "not finite" in result.output
    kept = json.loads(out.read_text())
    assert [r["strategy"] for r in kept] == ["supervised"]


@pytest.mark.parametrize("command", ["strategies", "datasets", "models", "plugins"])
def test_listings_have_json_forms(command):
    rows = json.loads(invoke(command, "--json").output)
    assert rows and all("name" in row for row in rows)


def test_strategies_json_lists_family_and_paper():
    rows = {r["name"]: r for r in json.loads(invoke("strategies", "--json").output)}
    assert rows["supervised"]["family"] == "baseline"
    assert all("paper" in r and "options" in r for r in rows.values())


def test_datasets_json_lists_each_datasets_training_defaults():
    rows = {r["name"]: r for r in json.loads(invoke("datasets", "--json").output)}
    for name, row in rows.items():
        assert row["train_defaults"] == get_dataset(name).train_defaults
    assert rows["mnist"]["train_defaults"]["epochs"] == 30
    assert {"epochs", "lr", "batch_size", "optimizer"} <= set(rows["moons"]["train_defaults"])


def test_strategies_json_spells_out_each_options_type_choices_and_bounds():
    (row,) = json.loads(invoke("strategies", "--json", "bald").output)
    allowed = {option["name"]: option["allowed"] for option in row["options"]}
    assert allowed["query_size"] == "an integer, at least 1"
    assert allowed["passes"] == "an integer, between 1 and 10000"
    assert allowed["budget"] == "an integer or none, at least 1"
    assert allowed["optimizer"] == "one of 'sgd', 'adam', 'adamw' or none"
    assert allowed["retrain"] == "one of 'scratch', 'warm'"


def test_module_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "sslzoo", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "sslzoo" in result.stdout


def test_bench_table_shows_distinct_pseudo_labeled_ids_and_draws_apart():
    from sslzoo._planning.bench import format_table, summarize

    # 10 labels: one step an epoch; epochs 2..13 (after t1) each draw 99 of the 990 pool ids, and 10
    # draws of 99 cover the pool: 12 · 99 = 1188 draws of 990 distinct ids
    result = invoke("bench", "-s", "pseudo_label", "-s", "supervised", "--dataset", "moons", "--labels", "10",
                    "--epochs", "13", "-o", "t1=1", "-o", "t2=2", "-o", "unlabeled_batch_size=99", "-q", "--json")
    records = json.loads(result.output)
    assert (records[0]["curve"][-1]["pseudo_ids"], records[0]["curve"][-1]["pseudo_labels"]) == (990, 1188)
    header, _, pseudo, supervised = [re.split(r"\s{2,}", line.strip())
                                     for line in format_table(summarize(records)).splitlines()]
    assert header[5:7] == ["pseudo-labeled ids", "pseudo-label draws"]
    assert pseudo[5:7] == ["990", "1188"] and supervised[5:7] == ["0", "0"]
    old = [{**r, "curve": [{k: v for k, v in e.items() if k != "pseudo_ids"} for e in r["curve"]]} for r in records]
    row = format_table(summarize(old)).splitlines()[2]
    assert re.split(r"\s{2,}", row)[5:7] == ["—", "1188"]  # records from before distinct ids were counted


def test_test_set_selection_is_flagged_in_the_bench_table():
    result = invoke("bench", "-s", "supervised", *FAST, "-o", "patience=1")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[2].startswith("supervised* ")
    assert lines[-1].startswith("* selected on the test set (patience=1)")
