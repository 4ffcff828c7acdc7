"""Stopping criteria: each rule on hand-made predictions, bad options as one-line errors, a moons run
that a criterion stops (its record says why and when), ``bench --stop`` and ``sslzoo stopping-criteria``,
and a plugin that adds a criterion."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry, default_registry
from sslzoo._contract.stopping import Predictions, StoppingCriterion, StoppingOptions, parse_stop
from sslzoo._default_plugins.stopping_criteria import (
    ClassificationChange,
    MaxConfidence,
    OverallUncertainty,
    StabilizingPredictions,
    cohens_kappa,
)
from sslzoo._engine.stopping_rule import Stopping
from sslzoo.errors import OptionError, PluginError, UnknownNameError
from tests.plugin_helpers import run_here


def seen(labels: list[int], classes: int = 2, ids: list[int] | None = None, sure: float = 1.0) -> Predictions:
    """Predictions of ``labels`` with probability ``sure`` on the predicted class (the rest spread evenly)."""
    probs = torch.full((len(labels), classes), (1 - sure) / max(1, classes - 1), dtype=torch.float64)
    probs[torch.arange(len(labels)), torch.tensor(labels)] = sure
    return Predictions(0, torch.tensor(ids if ids is not None else range(len(labels))), probs)


def fired(criterion: StoppingCriterion, *rounds: Predictions) -> list[bool]:
    return [criterion.check(r) is not None for r in rounds]


# -- the rules ------------------------------------------------------------------------------------

def test_cohens_kappa_of_hand_made_labelings():
    t = torch.tensor
    assert cohens_kappa(t([0, 0, 0, 1, 1]), t([0, 1, 0, 1, 0]), 2) == pytest.approx(1 / 6)
    assert cohens_kappa(t([0, 1, 1, 1, 1]), t([1, 1, 1, 1, 0]), 2) == pytest.approx(-0.25)
    assert cohens_kappa(t([0, 0, 0]), t([1, 1, 1]), 2) == 0.0
    assert cohens_kappa(t([2, 2, 2]), t([2, 2, 2]), 3) == 1.0  # both constant: 0/0 by the formula


def test_stabilizing_predictions_needs_a_window_of_agreements_above_kappa():
    a, b = seen([0, 1, 1, 0]), seen([0, 1, 1, 1])
    assert fired(StabilizingPredictions(), a, a, a, a) == [False, False, False, True]  # 3 agreements of 1
    assert fired(StabilizingPredictions(), a, a, a, b, b, b, b) == [False] * 6 + [True]  # one change spoils 3
    assert fired(StabilizingPredictions(kappa="0.7"), a, b, b, b) == [False, False, False, True]  # (0.5+1+1)/3
    assert fired(StabilizingPredictions(window="1"), a, a) == [False, True]


def test_overall_uncertainty_fires_on_a_low_mean_normalized_entropy():
    assert fired(OverallUncertainty(), seen([0, 1, 0], sure=0.5), seen([0, 1, 0], sure=0.999)) == [False, True]
    sure_but_one = seen([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], classes=3)
    sure_but_one.probs[0] = 1 / 3  # normalized entropy 1 on one id of 10: the mean is 0.1
    assert fired(OverallUncertainty(), sure_but_one) == [False]
    assert fired(OverallUncertainty(threshold="0.11"), sure_but_one) == [True]


def test_max_confidence_needs_every_watched_id_sure():
    sure_but_one = seen([0] * 1000, sure=1.0)
    sure_but_one.probs[7] = torch.tensor([0.9, 0.1])
    assert fired(MaxConfidence(), sure_but_one) == [False]
    assert fired(MaxConfidence(threshold="0.5"), sure_but_one) == [True]
    assert fired(MaxConfidence(), seen([0, 1] * 50, sure=1 - 1e-6)) == [True]


def test_classification_change_compares_the_ids_unlabeled_in_both_rounds():
    before = seen([0, 1, 1, 0], ids=[10, 11, 12, 13])
    queried_one = seen([0, 1, 1], ids=[13, 11, 12])  # 10 was queried; the others are in another order
    queried_one.probs[0] = torch.tensor([1.0, 0.0])
    assert fired(ClassificationChange(), before, queried_one) == [False, True]
    changed = seen([0, 0, 1], ids=[11, 12, 13])  # 11, 12 and 13 were 1, 1, 0
    assert fired(ClassificationChange(), before, changed) == [False, False]
    assert fired(ClassificationChange(threshold="1"), before, changed) == [False, True]


def test_a_stop_option_names_a_criterion_and_its_options():
    assert parse_stop("stabilizing_predictions") == ("stabilizing_predictions", {})
    assert parse_stop("stabilizing_predictions:kappa=0.95,window=2") == ("stabilizing_predictions",
                                                                          {"kappa": "0.95", "window": "2"})
    assert parse_stop("sslzoo:max_confidence") == ("sslzoo:max_confidence", {})
    assert parse_stop("sslzoo:max_confidence:threshold=0.01") == ("sslzoo:max_confidence", {"threshold": "0.01"})


# -- bad options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, error, message", [
    ("stabilising_predictions", UnknownNameError,
     "unknown stopping criterion 'stabilising_predictions'; did you mean stabilizing_predictions"),
    ("stabilizing_predictions:kapa=0.9", OptionError,
     "stopping criterion 'stabilizing_predictions' has no option 'kapa' (did you mean kappa?)"),
    ("stabilizing_predictions:window=0", OptionError,
     "option window='0' of stopping criterion 'stabilizing_predictions' is not allowed: it must be at least 1"),
    ("stabilizing_predictions:kappa=high", OptionError,
     "option kappa='high' of stopping criterion 'stabilizing_predictions' is not allowed: expected a number"),
    ("overall_uncertainty:threshold=1", OptionError,
     "option threshold=1.0 of stopping criterion 'overall_uncertainty' is not allowed: it must be below 1"),
    ("max_confidence:threshold=-0.1", OptionError, "it must be between 0.0 and 1.0"),
    ("classification_change:stop_set=-1", OptionError, "it must be at least 0"),
    ("classification_change:threshold", UnknownNameError,
     "unknown stopping criterion 'classification_change:threshold'; did you mean sslzoo:classification_change?"),
    (":threshold=0.1", OptionError, "names no stopping criterion"),
])
def test_a_bad_stop_option_is_a_one_line_error_before_training(text, error, message):
    with pytest.raises(error) as caught:
        sslzoo.run("margin", "moons", labels=10, device="cpu", options={"epochs": 1, "stop": text})
    assert message in str(caught.value) and "\n" not in str(caught.value)


# -- a run stopped by a criterion -----------------------------------------------------------------

MOONS: dict[str, Any] = {"labels": 10, "device": "cpu", "dataset_options": {"n_train": 200, "n_test": 200}}
AL = {"epochs": 30, "budget": 40, "query_size": 5}


def test_a_moons_run_stops_when_its_criterion_fires_and_says_when_and_why():
    stop = "stabilizing_predictions:window=1,kappa=0.5"
    (stopped,) = run_here("margin", "moons", **MOONS, options={**AL, "stop": stop})
    assert stopped["termination"] == "stop:stabilizing_predictions"
    entry = stopped["stopped"]
    assert entry["criterion"] == "stabilizing_predictions" and entry["round"] == 1 and entry["labels"] == 15
    assert entry["options"] == {"stop_set": 2000, "kappa": 0.5, "window": 1}
    assert entry["why"].startswith("mean Cohen's kappa ") and "≥ 0.5" in entry["why"]
    assert stopped["oracle_labels"] == 15 and stopped["curve"][-1]["round"] == 1
    assert stopped["options"]["stop"] == stop
    # the criterion draws nothing from the run's generator: the same queries as a run whose budget ends there
    (budget,) = run_here("margin", "moons", **MOONS, options={**AL, "budget": 15})
    assert budget["termination"] == "budget" and "stopped" not in budget and "stop" not in budget["options"]
    assert [e["test_accuracy"] for e in budget["curve"]] == [e["test_accuracy"] for e in stopped["curve"]]


# -- the command line -----------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_bench_stop_ends_a_run_in_its_learner_process_and_records_it():
    stop = "stabilizing_predictions:window=1,kappa=-1"  # any agreement will do: it fires after round 1
    result = invoke("bench", "-s", "margin", "--dataset", "moons", "-d", "n_train=200", "-d", "n_test=200",
                    "--labels", "10", "--epochs", "2", "--budget", "40", "--query-size", "5", "--stop", stop,
                    "--device", "cpu", "--json", "-q")
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output[result.output.index("["):])
    assert record["termination"] == "stop:stabilizing_predictions"
    assert record["stopped"]["round"] == 1 and record["stopped"]["labels"] == record["oracle_labels"] == 15
    assert record["options"]["stop"] == stop


def test_bench_stop_and_its_option_together_are_refused():
    result = invoke("bench", "-s", "margin", "--dataset", "moons", "--stop", "max_confidence", "-o",
                    "stop=overall_uncertainty")
    assert result.exit_code != 0
    assert "--stop max_confidence and -o stop=overall_uncertainty both set stop" in result.output


def test_bench_help_shows_stop():
    assert "--stop NAME[:KEY=VALUE,...]" in invoke("bench", "--help").output


def test_stopping_criteria_lists_the_built_ins_with_their_defaults_and_papers():
    result = invoke("stopping-criteria")
    assert result.exit_code == 0
    for name, defaults in [("stabilizing_predictions", "stop_set=2000, kappa=0.99, window=3"),
                           ("overall_uncertainty", "stop_set=0, threshold=0.05"),
                           ("max_confidence", "stop_set=0, threshold=0.001"),
                           ("classification_change", "stop_set=0, threshold=0.0")]:
        line = next(line for line in result.output.splitlines() if line.startswith(name))
        assert defaults in line
    listed = json.loads(invoke("stopping-criteria", "--json").output)
    zhu = "Jingbo Zhu, Huizhen Wang, Eduard Hovy"
    assert {row["name"]: row["paper"].split(".")[0] for row in listed} == {
        "stabilizing_predictions": "Michael Bloodgood, K", "overall_uncertainty": zhu, "max_confidence": zhu,
        "classification_change": zhu}


# -- a plugin's criterion -------------------------------------------------------------------------

@dataclass
class AfterRoundsOptions(StoppingOptions):
    rounds: int = field(default=1, metadata={"min": 0, "help": "the last round"})


class AfterRounds(StoppingCriterion):
    """Stop after the round given (a plugin's criterion)."""

    name = "after_rounds"
    summary = "stop after a given round"
    Options = AfterRoundsOptions

    def check(self, seen: Predictions) -> str | None:
        return f"round {seen.round} done" if seen.round >= self.options.rounds else None


def test_a_plugin_adds_a_criterion_that_stops_runs():
    class Plugin:
        @sslzoo.hookimpl
        def register_stopping_criteria(self, register):
            register(AfterRounds)

    registry = Registry(make_plugins(load="", extra=(Plugin(),)))
    assert "after_rounds" in registry.stopping_criteria and "after_rounds" not in default_registry().stopping_criteria
    (record,) = run_here("margin", "moons", **MOONS, registry=registry,
                         options={"epochs": 1, "budget": 40, "query_size": 5, "stop": "after_rounds:rounds=2"})
    assert record["termination"] == "stop:after_rounds"
    assert record["stopped"] == {"criterion": "after_rounds", "options": {"stop_set": 0, "rounds": 2}, "round": 2,
                                 "labels": 20, "why": "round 2 done"}


def test_a_plugin_that_registers_no_criterion_class_is_named():
    class Plugin:
        @sslzoo.hookimpl
        def register_stopping_criteria(self, register):
            register(lambda seen: None)

    with pytest.raises(PluginError, match="which is not a sslzoo.StoppingCriterion subclass"):
        Registry(make_plugins(load="", extra=(Plugin(),)))


def test_a_criterion_sees_the_same_stop_set_every_round():
    registry = default_registry()
    stopping = Stopping(registry, "stabilizing_predictions:stop_set=5", "test")

    class Ctx:
        seed = 3
        pool = torch.arange(100)

        def pool_ids(self) -> torch.Tensor:
            return self.pool

    ctx = Ctx()
    first = stopping.watched(ctx)  # type: ignore[arg-type]
    ctx.pool = torch.arange(50, 100)
    assert torch.equal(stopping.watched(ctx), first) and first.numel() == 5  # type: ignore[arg-type]
