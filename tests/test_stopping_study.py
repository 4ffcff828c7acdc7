"""The stopping study: watched criteria in a run's record (in-process and through ``bench``'s learner
process), watching that changes nothing the run does, the study's rows and summaries from records
(a stopped run against its unstopped twin), and the study in ``compare``, ``report`` and the results page."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._contract.context import Context
from sslzoo._reports.comparison import compare
from sslzoo._reports.page import write_results
from sslzoo._reports.reporting import report
from sslzoo._reports.stopping import STOPPED, WATCHED, study
from sslzoo._results.record import Record
from sslzoo.errors import OptionError, ResultsError, UnknownNameError
from tests.plugin_helpers import run_here

MOONS: dict[str, Any] = {"labels": 10, "device": "cpu", "dataset_options": {"n_train": 200, "n_test": 200}}
AL = {"epochs": 10, "budget": 30, "query_size": 5}
#: The four built-in criteria; the first fires after round 1 (any agreement will do), the others are as shipped.
WATCH = ["stabilizing_predictions:window=1,kappa=-1", "overall_uncertainty", "max_confidence",
         "classification_change:threshold=1"]
ENTRY_KEYS = ["criterion", "options", "round", "labels", "why"]


# -- watched criteria in a run ----------------------------------------------------------------------

def test_a_watched_run_records_each_criterion_in_order_and_does_what_the_unwatched_run_does():
    (watched,) = run_here("margin", "moons", **MOONS, options={**AL, "watch": ";".join(WATCH)})
    (plain,) = run_here("margin", "moons", **MOONS, options=AL)
    assert watched["curve"] == plain["curve"] and watched["test_accuracy"] == plain["test_accuracy"]
    assert watched["termination"] == plain["termination"] == "budget" and "stopped" not in watched
    assert "watched" not in plain and "watch" not in plain["options"]
    assert watched["options"]["watch"] == ";".join(WATCH)
    entries = watched["watched"]
    assert [e["criterion"] for e in entries] == ["stabilizing_predictions", "overall_uncertainty", "max_confidence",
                                                 "classification_change"]
    assert all(list(e) == ENTRY_KEYS for e in entries)
    first, *_, change = entries
    assert first["round"] == 1 and first["labels"] == 15 and first["why"].startswith("mean Cohen's kappa")
    assert first["options"] == {"stop_set": 2000, "kappa": -1.0, "window": 1}
    assert change["round"] == 1 and change["labels"] == 15  # a fraction 1 of the ids may change: fires at once
    never = [e for e in entries if e["round"] is None]
    assert never and all(e["labels"] is None and e["why"] is None for e in never)


def test_watching_the_criterion_that_stops_a_run_fires_it_at_the_same_round():
    stop = "stabilizing_predictions:window=1,kappa=-1"
    (record,) = run_here("margin", "moons", **MOONS, options={**AL, "stop": stop, "watch": f"{stop};max_confidence"})
    assert record["termination"] == "stop:stabilizing_predictions"
    assert record["watched"][0] == record["stopped"] and record["watched"][1]["round"] is None
    assert Record.from_json(record).watched == record["watched"]


def test_a_watched_criterion_fires_at_the_round_it_stops_the_same_run_at():
    criterion = "stabilizing_predictions:window=2,kappa=0.8"  # fires after round 2 of 6 here
    options = {**AL, "epochs": 30, "budget": 40}
    (watched,) = run_here("margin", "moons", **MOONS, options={**options, "watch": criterion})
    (stopped,) = run_here("margin", "moons", **MOONS, options={**options, "stop": criterion})
    assert watched["watched"] == [stopped["stopped"]] and stopped["stopped"]["round"] == 2
    assert watched["curve"][:len(stopped["curve"])] == stopped["curve"] and watched["curve"][-1]["round"] == 6
    (row,) = study([stopped], twins=[watched]).firings
    assert (row.labels, row.saved, row.full) == (20, 20, watched["test_accuracy"])


def test_criteria_watching_the_same_stop_set_share_one_prediction_a_round(monkeypatch):
    watched: list[int] = []
    predict = Context.predict

    def counted(self: Context, ids: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        watched.append(ids.numel())
        return predict(self, ids, *args, **kwargs)

    monkeypatch.setattr(Context, "predict", counted)
    criteria = "max_confidence:stop_set=50;overall_uncertainty:stop_set=50;classification_change:stop_set=50"
    (record,) = run_here("margin", "moons", **MOONS, options={**AL, "watch": criteria, "stop": "max_confidence"})
    rounds = record["curve"][-1]["round"]
    assert record["termination"] == "budget" and record["watched"][0]["round"] is None  # asked after every round
    assert watched.count(50) == rounds  # after rounds 0 to the one before the last, once each


@pytest.mark.parametrize("text, error, message", [
    ("stabilising_predictions", UnknownNameError,
     "unknown stopping criterion 'stabilising_predictions'; did you mean stabilizing_predictions"),
    ("max_confidence;overall_uncertainty:threshold=1", OptionError,
     "option threshold=1.0 of stopping criterion 'overall_uncertainty' is not allowed: it must be below 1"),
    ("max_confidence;:threshold=0.1", OptionError, "option watch=':threshold=0.1' of strategy 'margin'"),
    (" ; ", OptionError, "names no stopping criterion; give NAME[:KEY=VALUE,...], several separated by ';'"),
    ("max_confidence; max_confidence", OptionError, "names 'max_confidence' twice"),
])
def test_a_bad_watch_option_is_a_one_line_error_before_training(text, error, message):
    with pytest.raises(error) as caught:
        sslzoo.run("margin", "moons", labels=10, device="cpu", options={"epochs": 1, "watch": text})
    assert message in str(caught.value) and "\n" not in str(caught.value)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.slow  # the learner's fork server starts for it
def test_bench_watch_records_the_criteria_from_its_learner_process():
    flags = [arg for criterion in WATCH for arg in ("--watch", criterion)]
    result = invoke("bench", "-s", "margin", "--dataset", "moons", "-d", "n_train=200", "-d", "n_test=200",
                    "--labels", "10", "--epochs", "2", "--budget", "30", "--query-size", "5", *flags,
                    "--device", "cpu", "--json", "-q")
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.output[result.output.index("["):])
    assert record["options"]["watch"] == ";".join(WATCH) and record["termination"] == "budget"
    assert [e["criterion"] for e in record["watched"]][0] == "stabilizing_predictions"
    assert record["watched"][0]["round"] == 1 and record["watched"][0]["labels"] == 15


def test_bench_watch_and_its_option_together_are_refused_and_help_shows_watch():
    result = invoke("bench", "-s", "margin", "--dataset", "moons", "--watch", "max_confidence", "-o",
                    "watch=overall_uncertainty")
    assert result.exit_code != 0 and "--watch max_confidence and -o watch=overall_uncertainty both set" in result.output
    assert "--watch NAME[:KEY=VALUE,...]" in invoke("bench", "--help").output


# -- the study from records -------------------------------------------------------------------------

def entry(criterion: str, rnd: int | None, labels: int | None, **options: Any) -> dict[str, Any]:
    return {"criterion": criterion, "options": {"stop_set": 0, **options}, "round": rnd, "labels": labels,
            "why": None if rnd is None else f"fired after round {rnd}"}


def record(seed: int, accuracies: list[float], strategy: str = "margin", **extra: Any) -> dict[str, Any]:
    """A record of rounds of 10 labels from 10, one curve entry per epoch (2 epochs a round)."""
    curve = [{"round": r, "epoch": e, "epochs": 2, "labels": 10 + 10 * r,
              "test_accuracy": round(a - (0.05 if e == 1 else 0), 4)}
             for r, a in enumerate(accuracies) for e in (1, 2)]
    options = {"epochs": 2, "query_size": 10, "budget": 10 + 10 * (len(accuracies) - 1), **extra.pop("options", {})}
    return {"strategy": strategy, "family": "al", "dataset": "moons", "seed": seed, "labels": 10,
            "oracle_labels": curve[-1]["labels"], "test_accuracy": accuracies[-1], "options": options,
            "termination": "budget", "curve": curve, **extra}


def test_a_watched_criterion_saves_the_labels_after_its_round_and_gives_up_the_accuracy_gained_since():
    watched = [entry("max_confidence", 2, 30), entry("overall_uncertainty", None, None)]
    records = [record(0, [0.6, 0.7, 0.8, 0.85, 0.9], watched=watched),
               record(1, [0.6, 0.75, 0.85, 0.86, 0.86], watched=[entry("max_confidence", 1, 20),
                                                                 entry("overall_uncertainty", 3, 40)])]
    found = study(records)
    rows = {(f.criterion, f.seed): f for f in found.firings}
    first = rows["max_confidence", 0]
    assert (first.how, first.round, first.labels, first.budget, first.saved) == (WATCHED, 2, 30, 50, 20)
    assert first.accuracy == 0.8 and first.full == 0.9 and first.given_up == pytest.approx(0.1)  # round 2's last epoch
    never = rows["overall_uncertainty", 0]
    assert never.round is None and never.saved == 0 and never.given_up == 0.0  # the run goes to its budget
    assert rows["overall_uncertainty", 1].saved == 10 and rows["overall_uncertainty", 1].given_up == 0.0
    summaries = {s.criterion: s for s in found.summaries}
    mc = summaries["max_confidence"]
    assert (mc.fired, mc.seeds, mc.rounds, mc.saved_mean) == (2, [0, 1], [2, 1], 25.0)
    assert mc.given_up_mean == pytest.approx((0.1 + 0.11) / 2) and mc.saved_std == pytest.approx(7.0711, abs=1e-4)
    assert summaries["overall_uncertainty"].fired == 1 and summaries["overall_uncertainty"].rounds == [None, 3]


def test_a_stopped_run_gives_up_the_accuracy_its_unstopped_twin_reaches():
    stopped = record(0, [0.6, 0.7, 0.8], options={"budget": 50, "stop": "max_confidence"},
                     termination="stop:max_confidence", stopped=entry("max_confidence", 2, 30),
                     watched=[entry("overall_uncertainty", None, None)])
    twin = record(0, [0.6, 0.7, 0.8, 0.85, 0.92])
    other_seed = record(1, [0.6, 0.7, 0.8, 0.85, 0.5])
    row, watched = study([stopped, twin, other_seed]).firings
    assert watched.how == WATCHED and watched.round is None  # it might have fired after the stop: unknown
    assert watched.saved is None and watched.given_up is None and watched.budget == 50
    assert (row.how, row.round, row.labels, row.budget, row.saved) == (STOPPED, 2, 30, 50, 20)
    assert row.accuracy == 0.8 and row.full == 0.92 and row.given_up == pytest.approx(0.12)
    alone = study([stopped]).firings[0]  # no twin: the budget option, the accuracy given up unknown
    assert alone.budget == 50 and alone.saved == 20 and alone.full is None and alone.given_up is None
    assert study([stopped], twins=[twin]).firings[0].given_up == pytest.approx(0.12)


def test_one_criterion_with_several_options_is_named_by_the_options_that_differ():
    records = [record(0, [0.6, 0.7, 0.8], watched=[entry("stabilizing_predictions", 1, 20, kappa=0.9, window=3),
                                                   entry("stabilizing_predictions", 2, 30, kappa=0.99, window=3),
                                                   entry("max_confidence", None, None)])]
    assert [s.criterion for s in study(records).summaries] == [
        "max_confidence", "stabilizing_predictions:kappa=0.9", "stabilizing_predictions:kappa=0.99"]


def test_a_record_with_a_malformed_watched_entry_is_refused():
    with pytest.raises(ResultsError, match="watched must be a list of entries"):
        Record.from_json({**record(0, [0.6]), "watched": ["max_confidence"]})


# -- shown in compare, report and the results page ----------------------------------------------------

def study_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Unstopped runs (the baseline) and the same runs stopped by max_confidence after round 2."""
    base = [record(s, [0.6, 0.7, 0.8, 0.85, 0.9 + s / 100]) for s in (0, 1)]
    new = [record(s, [0.6, 0.7, 0.8], options={"budget": 50, "stop": "max_confidence"},
                  termination="stop:max_confidence", stopped=entry("max_confidence", 2, 30)) for s in (0, 1)]
    return base, new


def test_compare_shows_the_labels_each_criterion_saves_and_the_accuracy_it_gives_up():
    base, new = study_records()
    cmp = compare(base, new)
    text = cmp.render("plain")
    assert "Stopping (NEW: NEW)" in text and "Stopping (BASELINE" not in text
    line = next(line for line in text.splitlines() if line.startswith("margin") and "2 of 2 seeds" in line)
    assert "2, 2" in line and "20.0 ± 0.0" in line and "10.50 ± 0.71 pt" in line  # 90.0 and 91.0 against 80.0
    data = json.loads(cmp.render("json"))
    (summary,) = data["stopping"]["NEW"]["summaries"]
    assert summary["saved_mean"] == 20 and summary["given_up_mean"] == pytest.approx(0.105)
    assert "#### Stopping: new `NEW`" in cmp.render("md")
    both = compare(base, base + new)  # the stopped runs beside their twins: the rows compare the twins
    assert both.rows[0].verdict == "same" and both.stopping["NEW"].summaries == cmp.stopping["NEW"].summaries


def test_report_has_a_stopping_section_with_the_study_and_its_tables_show_a_stopped_runs_twin(tmp_path):
    watched = [record(s, [0.6, 0.7, 0.8, 0.85, 0.9], watched=[entry("max_confidence", 2, 30)]) for s in (0, 1)]
    base, stopped = study_records()
    report([*watched, *(dict(r, strategy="random") for r in base + stopped)], tmp_path)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    summary = markdown[:markdown.index("### Learning curves")]
    assert "| random | al | 2 | 90.50 ± 0.71 % | 50 |" in summary  # the twins, not the stopped runs
    section = markdown[markdown.index("### Stopping"):]
    assert "| margin | max_confidence | watched | 2 of 2 seeds | 2, 2 | 20.0 ± 0.0 | 10.00 ± 0.00 pt |" in section
    assert "| margin | 0 | max_confidence | watched | 2 | 30 | 50 | 20 | 80.00 % | 90.00 % | 10.00 pt |" in section
    assert "| random | max_confidence | stopped | 2 of 2 seeds | 2, 2 | 20.0 ± 0.0 | 10.50 ± 0.71 pt |" in section


def test_the_results_page_shows_the_stopping_study_of_a_presets_watched_records(tmp_path):
    store = tmp_path / "results" / "lowbudget-mnist"
    store.mkdir(parents=True)
    records = [{**record(s, [0.6, 0.7, 0.8, 0.85, 0.9], strategy="entropy", watched=[entry("max_confidence", 2, 30)]),
                "dataset": "mnist", "preset": "lowbudget-mnist"} for s in (0, 1)]
    (store / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    write_results(tmp_path / "results", tmp_path / "results.md")
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    section = text[text.index("## `lowbudget-mnist`"):]
    section = section[:section.index("\n## ")] if "\n## " in section else section
    study_part = section[section.index("### Stopping study"):]
    assert "| entropy | max_confidence | watched | 2 of 2 seeds | 2, 2 | 20.0 ± 0.0 | 10.00 ± 0.00 pt |" in study_part
    assert "### Stopping study" not in text[:text.index("## `lowbudget-mnist`")]  # only where records watched
