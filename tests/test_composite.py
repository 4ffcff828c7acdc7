"""Hybrids by composition: ``A+B`` queries with active learner A and auto-labels with B every round;
``A>B`` runs A's rounds, then B's."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sslzoo import run
from sslzoo._cli.main import main
from sslzoo._contract.labels import ORACLE, PSEUDO
from sslzoo._engine.catalog import create_strategy
from sslzoo._results.record import Record
from sslzoo.errors import OptionError, UnknownNameError
from sslzoo.testing import tiny_run


def test_composition_queries_the_oracle_and_pseudo_labels_the_rest():
    result = tiny_run("least_confidence+self_training", criterion="k_best", k_best=20, epochs=20)
    ledger = result.job.data.ledger
    record = result.record
    assert record["strategy"] == "least_confidence+self_training" and record["family"] == "hybrid"
    assert record["oracle_labels"] == 25  # the budget, met by least_confidence's queries
    queried = (ledger.source == ORACLE) & (ledger.round > 0)
    pseudo = ledger.source == PSEUDO
    assert int(queried.sum()) == 15 and int(pseudo.sum()) > 0
    assert not (queried & pseudo).any()
    assert record["pseudo"]["count"] == int(pseudo.sum())
    assert {p["name"] for p in record["versions"]["plugins"]} == {
        "sslzoo._default_plugins.uncertainty", "sslzoo._default_plugins.self_training"}


def test_sequence_queries_until_the_budget_then_only_pseudo_labels():
    result = tiny_run("least_confidence>self_training", criterion="k_best", k_best=7, max_rounds=3, epochs=5)
    ledger, record = result.job.data.ledger, result.record
    assert record["strategy"] == "least_confidence>self_training" and record["family"] == "hybrid"
    assert record["oracle_labels"] == 25 and record["termination"] == "max_rounds"
    queried_rounds = sorted(set(ledger.round[(ledger.source == ORACLE) & (ledger.round > 0)].tolist()))
    pseudo_rounds = ledger.round[ledger.source == PSEUDO].tolist()
    assert queried_rounds == [1, 2, 3]  # 3 rounds of 5 queries to the budget of 25, no pseudo-labels
    assert sorted(set(pseudo_rounds)) == [4, 5, 6] and len(pseudo_rounds) == 21  # then B's 3 rounds of 7
    assert [e["labels"] for e in record["curve"]] == [10, 15, 20, 25, 25, 25, 25]


def test_sequence_needs_a_round_based_pseudo_labeler():
    with pytest.raises(OptionError, match="pseudo-labels at every step.*entropy\\+pseudo_label"):
        create_strategy("entropy>pseudo_label")


def test_options_are_routed_to_the_part_that_has_them():
    strategy = create_strategy("entropy+self_training", query_size=7, threshold=0.9, epochs=3,
                               **{"self_training.max_rounds": 4})
    assert strategy.active.options.query_size == 7 and strategy.active.options.epochs == 3
    assert strategy.pseudo.options.threshold == 0.9 and strategy.pseudo.options.max_rounds == 4
    assert strategy.resolved_options()["self_training.threshold"] == 0.9


@pytest.mark.parametrize(("name", "error", "fragment"), [
    ("entropy+margin", OptionError, "the second part must be a pseudo-labeling strategy"),
    ("self_training+entropy", OptionError, "the first part must be an active-learning strategy"),
    ("entropy+self_trainig", UnknownNameError, "did you mean self_training"),
    ("entropy+self_training+margin", OptionError, "exactly two names"),
    ("entropy+self_training>margin", OptionError, "exactly two names"),
    ("entropy+self_training", OptionError, "has no option 'colour'"),
])
def test_bad_compositions_are_clear_errors(name, error, fragment):
    options = {"colour": "red"} if name == "entropy+self_training" else {}
    with pytest.raises(error, match=fragment):
        create_strategy(name, **options)


def test_composition_runs_from_the_command_line():
    result = CliRunner().invoke(main, ["bench", "-s", "margin+pseudo_label", "--dataset", "moons", "--labels", "10",
                                       "--epochs", "2", "--query-size", "5", "--budget", "15", "-o", "t1=0",
                                       "-o", "t2=1", "--json", "-q"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output)
    assert record["strategy"] == "margin+pseudo_label" and record["oracle_labels"] == 15
    assert record["pseudo"]["count"] > 0


def test_budget_larger_than_the_pool_ends_at_an_empty_pool_and_says_so():
    result = CliRunner().invoke(main, ["bench", "-s", "random", "--dataset", "moons", "-d", "n_train=40",
                                       "--labels", "10", "--epochs", "1", "--query-size", "20", "--budget", "100",
                                       "-q"])
    assert result.exit_code == 0, result.output
    assert "the unlabeled pool ran out before the budget was met" in result.output


def test_every_strategy_is_listed_with_family_and_paper():
    rows = json.loads(CliRunner().invoke(main, ["strategies", "--json"]).output)
    by_name = {r["name"]: r for r in rows}
    expected = {"supervised", "pseudo_label", "self_training", "random", "least_confidence", "margin", "entropy",
                "bald", "mc_entropy", "mc_variation_ratios", "mc_mean_std"}
    assert expected <= set(by_name)
    for name in expected - {"supervised"}:
        assert by_name[name]["family"] in ("ssl", "al") and len(by_name[name]["paper"]) > 20, name


def test_records_report_labels_needed_and_area_under_the_budget_curve():
    record = run("entropy", "moons", labels=6, options={"epochs": 60, "query_size": 4, "budget": 30, "lr": 0.02},
                 dataset_options={"n_train": 300})[0]
    assert "al_metrics" not in record  # derived where it is reported
    metrics = Record.from_json(record).al_metrics()
    assert set(metrics["labels_to_accuracy"]) == {"0.90", "0.95"}
    reached = metrics["labels_to_accuracy"]["0.90"]
    assert reached is None or 6 <= reached <= 30
    assert 0.0 < metrics["budget_auc"] <= 1.0
