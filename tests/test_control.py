"""The control group: a strategy's protocol replayed with random queries (``bench --control``) and the
efficiency boost that ``report`` states from it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._contract.registry import default_registry
from sslzoo._ops.metrics import budget_points, efficiency_boost
from sslzoo._planning.control_group import control_of, with_controls
from sslzoo._reports.reporting import report
from sslzoo.errors import OptionError
from tests.tiny_records import TINY, moons_records


def test_the_control_of_an_active_learner_is_random_and_of_a_composition_random_with_its_pseudo_labeler() -> None:
    assert control_of("bald", "al") == "random"
    assert control_of("least_confidence+self_training", "hybrid") == "random+self_training"
    assert control_of("margin>pseudo_label", "hybrid") == "random>pseudo_label"
    assert [control_of(n, f) for n, f in (("random", "al"), ("random+self_training", "hybrid"),
                                          ("supervised", "baseline"), ("pseudo_label", "ssl"))] == [None] * 4


def test_efficiency_boost_is_the_controls_labels_over_the_labels_the_strategy_needs_for_its_accuracy() -> None:
    control = [(10.0, 0.5), (30.0, 0.7), (50.0, 0.8)]
    assert efficiency_boost([(10.0, 0.5), (20.0, 0.79), (25.0, 0.81), (50.0, 0.9)], control) == {
        "control_accuracy": 0.8, "control_labels": 50.0, "labels": 25.0, "boost": 2.0, "at_least": False}
    never = efficiency_boost([(10.0, 0.5), (50.0, 0.75)], control)
    assert never["labels"] is None and never["boost"] is None
    assert efficiency_boost([(10.0, 0.85), (20.0, 0.9)], control)["at_least"] is True


def test_the_control_replays_the_strategys_whole_protocol() -> None:
    registry = default_registry()
    given = {"least_confidence": {"budget": "30", "query_size": "5", "epochs": "7", "lr": "0.02"}, "supervised": {}}
    options = with_controls(["least_confidence", "supervised"], given, registry)
    assert list(options) == ["least_confidence", "supervised", "random"]
    replay = sslzoo.create_strategy("random", **options["random"]).resolved_options()
    original = sslzoo.create_strategy("least_confidence", **given["least_confidence"]).resolved_options()
    assert replay == original  # every option of random is the active learner's


def test_a_composition_is_replayed_with_its_pseudo_labelers_options() -> None:
    name = "least_confidence+self_training"
    given = {name: {"budget": "30", "self_training.threshold": "0.9"}}
    options = with_controls([name], given, default_registry())
    replay = sslzoo.create_strategy("random+self_training", **options["random+self_training"]).resolved_options()
    assert replay["self_training.threshold"] == 0.9 and replay["budget"] == 30


@pytest.mark.parametrize(("names", "given", "message"), [
    (["supervised", "pseudo_label"], {}, "none of supervised, pseudo_label queries labels"),
    (["entropy", "margin"], {"entropy": {"budget": "30"}, "margin": {"budget": "40"}},
     r"entropy and margin run different protocols \(budget=30 vs 40\)"),
    (["entropy", "random"], {"entropy": {"budget": "30"}, "random": {"budget": "40"}},
     r"random is run with other options than the protocol of entropy \(budget=40 vs 30\)"),
])
def test_a_control_group_that_cannot_replay_the_protocols_is_an_error(names: list[str], given: dict,
                                                                      message: str) -> None:
    options = {name: given.get(name, {}) for name in names}
    with pytest.raises(OptionError, match=message):
        with_controls(names, options, default_registry())


def test_bench_control_runs_random_on_the_same_seeds_and_split(one_thread) -> None:
    result = CliRunner().invoke(main, ["bench", "-s", "least_confidence", "--dataset", "moons", "--labels", "10",
                                       "--budget", "20", "--query-size", "10", "--epochs", "5", "--seeds", "2",
                                       "--control", "--device", "cpu", "--json", "-q"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [(r["strategy"], r["seed"]) for r in records] == [("least_confidence", 0), ("least_confidence", 1),
                                                             ("random", 0), ("random", 1)]
    for strategy, control in zip(records[:2], records[2:]):
        assert control["options"] == strategy["options"] and control["split"] == strategy["split"]
        assert control["curve"][0] == strategy["curve"][0]  # the same starting labels, the same first model


def test_the_report_states_the_efficiency_boost_over_the_control_group(tmp_path) -> None:
    records = moons_records("least_confidence", "random")
    written = report(records, tmp_path)
    (row,) = written.control_group
    assert row["strategy"] == "least_confidence" and row["control"] == "random"
    controls = [r for r in records if r["strategy"] == "random"]
    assert row["control_labels"] == TINY["random"]["budget"]
    assert row["control_accuracy"] == pytest.approx(sum(r["test_accuracy"] for r in controls) / len(controls))
    ours = [budget_points(r["curve"]) for r in records if r["strategy"] == "least_confidence"]
    mean = [(x, sum(c[i][1] for c in ours) / len(ours)) for i, (x, _) in enumerate(ours[0])]  # same label counts
    needed = next((x for x, y in mean if y >= row["control_accuracy"]), None)
    assert row["labels"] == needed
    assert row["boost"] == (pytest.approx(TINY["random"]["budget"] / needed) if needed else None)
    assert "### Against the control group" in written.markdown.read_text(encoding="utf-8")


def test_the_report_says_how_to_get_a_control_group_when_the_records_lack_it(tmp_path) -> None:
    written = report(moons_records("least_confidence", "supervised"), tmp_path)
    assert "No control group in these records for least_confidence: run the same bench with `--control`" in \
        written.markdown.read_text(encoding="utf-8")
    assert written.control_group == []


def test_a_strategy_that_never_reaches_its_controls_accuracy_has_a_boost_below_its_labels_ratio(tmp_path) -> None:
    records = moons_records("least_confidence", "random")
    for record in records:
        if record["strategy"] == "least_confidence":
            for entry in record["curve"]:
                entry["test_accuracy"] = 0.2
            record["test_accuracy"] = 0.2
    written = report(records, tmp_path)
    assert written.control_group[0]["boost"] is None
    text = written.markdown.read_text(encoding="utf-8")
    line = next(line for line in text.splitlines() if line.startswith("| least_confidence | random |"))
    assert "| not reached | < 1.00× |" in line  # not there with 30 labels, the control's 30
