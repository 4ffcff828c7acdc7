"""One plan: a preset becomes runs one way (:func:`sslzoo._planning.plan.preset_plan`), and ``sslzoo
bench``, the results page and ``--resume`` all take what it gives."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from sslzoo._cli import main as cli
from sslzoo._planning.plan import Group, Plan, overridden, preset_plan
from sslzoo._planning.preset import get_preset, list_presets
from sslzoo._reports.page import check_records
from sslzoo._results.store import planned_record
from sslzoo.errors import ResultsError


def planned_by_the_command(monkeypatch, *args: str) -> tuple[Plan, int]:
    """The plan ``sslzoo bench ARGS`` hands to the executor (nothing runs), and how many times the
    bench command itself was entered."""
    plans: list[Plan] = []
    monkeypatch.setattr(cli, "run_plan", lambda plan, **_: plans.append(plan) or [[] for _ in plan.groups])
    entered = []
    command = cli.main.commands["bench"]
    real = command.callback
    assert real is not None
    monkeypatch.setattr(command, "callback", lambda **kw: entered.append(1) or real(**kw))
    result = CliRunner().invoke(cli.main, ["bench", *args, "-q"])
    assert result.exit_code == 0, result.output
    return plans[0], len(entered)


def test_bench_with_a_preset_runs_the_presets_plan_under_the_flags_without_reentering_itself(monkeypatch, tmp_path):
    plan, entered = planned_by_the_command(monkeypatch, "--preset", "mnist-tiny", "--ci", "--out", str(tmp_path),
                                           "-o", "epochs=3", "--seed", "4", "-d", "n_test=200")
    expected = overridden(preset_plan(get_preset("mnist-tiny"), "ci", options={"epochs": "3"},
                                      dataset_options={"n_test": "200"}, out=str(tmp_path)), seed=4)
    assert plan == expected
    assert entered == 1
    assert [(g.labels, g.preset, g.out) for g in plan.groups] == [
        (n, f"mnist-tiny:ci@{n}", str(tmp_path / f"labels-{n}")) for n in (10, 20)]
    assert all(g.options["epochs"] == "3" and "supervised.epochs" not in g.options for g in plan.groups)


def test_a_presets_typed_values_reach_the_strategies_without_a_round_trip_through_text():
    plan = preset_plan(get_preset("moons-6"))
    options = plan.groups[0].options
    assert options["label_propagation.gamma"] == 100.0 and isinstance(options["label_propagation.gamma"], float)
    runs = dict((spec.strategy, strategy) for spec, strategy in plan.expand()[0])
    assert runs["label_propagation"].options.gamma == 100.0


def test_bench_without_a_preset_is_one_group_of_its_flags(monkeypatch):
    plan, _ = planned_by_the_command(monkeypatch, "-s", "supervised", "--dataset", "moons", "--labels", "6",
                                     "--epochs", "2")
    assert plan.groups == (Group(6, ("supervised",), {"epochs": 2}, None, None),)
    assert (plan.dataset, plan.seed, plan.seeds) == ("moons", 0, 1)


def planned_records(name: str, size: str) -> list[dict]:
    preset = get_preset(name)
    on_disk = {"data_dir": "/data"} if preset.dataset == "cifar10" else None  # as a command gives it
    plan = dataclasses.replace(preset_plan(preset, size, dataset_options=on_disk), seeds=1)
    return [planned_record(spec, strategy) for runs in plan.expand() for spec, strategy in runs]


@pytest.mark.parametrize("name", list_presets())
def test_the_results_page_holds_records_to_the_presets_plan(name):
    for size in ("full", "ci"):
        records = planned_records(name, size)
        assert check_records(get_preset(name), records, [f"{size} {i}" for i in range(len(records))]) == []


def test_the_results_page_names_a_record_that_drifted_from_the_plan_and_refuses_one_outside_it():
    preset = get_preset("moons-6")
    records = planned_records("moons-6", "full")
    drifted = json.loads(json.dumps(records[0]))
    drifted["options"]["epochs"] = 7
    assert check_records(preset, [drifted], ["a"]) == [f"epochs=7 (the preset now runs 200) for {drifted['strategy']}"]
    with pytest.raises(ResultsError, match="with 10 labels is not a run of preset"):
        check_records(preset, [{**records[0], "labels": 10}], ["b"])


def test_resume_reuses_exactly_the_runs_of_the_presets_plan(tmp_path):
    args = ["bench", "--preset", "mnist-tiny", "--ci", "-s", "supervised", "--out", str(tmp_path), "--json"]
    first = CliRunner().invoke(cli.main, args)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli.main, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert again.output.count("1 of 1 runs already done, 0 to run") == 2  # a store per label count, each reused
    assert json.loads(again.stdout) == json.loads(first.stdout)
