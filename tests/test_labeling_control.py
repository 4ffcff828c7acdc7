"""A labeling session's control group: random items asked beside the strategy's queries, their labels
never shown to the strategy, a random-query learner replayed on the labels people gave, and the
report's efficiency boost computed from that replay; crash-safe, one writer, one-line errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sslzoo._default_plugins.datasets import TwoMoons
from sslzoo._ops.metrics import budget_points, efficiency_boost
from sslzoo.errors import SessionError
from sslzoo.labeling import Round, Session, SimulatedLabeler, simulate
from sslzoo.labeling.control_queries import CONTROL_FILE, ControlGroup, holdings
from sslzoo.labeling.replay import replay
from sslzoo.labeling.replay import report as session_report
from sslzoo.labeling.sheets import QUERY_COLUMNS, csv_bytes
from tests.test_labeling import FAST, MOONS, ROOT, _blocks, _label_commands, invoke, one_line_error, write_labels

TRUTH = TwoMoons(**MOONS).load(0).y_train
Item = dict[str, Any]


def start(directory: Path, control: float | str | None = 1, **options: str) -> Session:
    return Session.start(directory, "moons", "entropy", options={**FAST, **options}, dataset_options=dict(MOONS),
                         device="cpu", control=control)


def answer(session: Session, rounds: int, k: int, flip: Callable[[Item, Round], bool] = lambda item, asked: False,
           truth: torch.Tensor = TRUTH) -> None:
    """``rounds`` rounds of ``k`` queries answered with ``truth`` (two classes), the answer about every
    item of a round for which ``flip`` holds the other class, each imported; then a training."""
    for _ in range(rounds):
        asked = session.next(k)
        rows = [{"id": item["id"], "label": session.classes[int(truth[item["id"]]) ^ flip(item, asked)]}
                for item in asked.items]
        (asked.directory / "answers.csv").write_bytes(csv_bytes(QUERY_COLUMNS, rows))
        session.import_labels(asked.directory / "answers.csv", labeler="tester")
    session.train()


def trainings(session: Session) -> list[dict[str, Any]]:
    return [e for e in session.state().history if e["event"] == "train"]


def without_times(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in ("at", "wall_seconds")} for e in entries]


def control_lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / CONTROL_FILE).read_text().splitlines()]


# -- asking -----------------------------------------------------------------------------------------
def test_each_round_with_a_model_asks_about_random_control_items_mixed_into_the_queries(tmp_path, one_thread):
    session = start(tmp_path / "s", control=0.5)
    answer(session, rounds=4, k=6)
    cold, *rounds = session.state().queries()
    assert "control" not in cold and not any(item["control"] for item in cold["items"])  # random already: shared
    start_ids = {item["id"] for item in cold["items"]}
    drawn: set[int] = set()
    for entry in rounds:
        draws = set(entry["control"])
        assert len(draws) == 3  # ceil(0.5 · 6)
        assert not draws & (start_ids | drawn)  # from the control group's own pool: never its start or a draw again
        drawn |= draws
        queries = [item["id"] for item in entry["items"] if not item["control"]]
        controls = [item["id"] for item in entry["items"] if item["control"]]
        assert len(queries) == 6 and set(controls) <= draws and not set(controls) & set(queries)
        rows = list(csv.DictReader(open(tmp_path / "s" / f"round-{entry['round']}" / "queries.csv")))
        assert [int(r["id"]) for r in rows] == [item["id"] for item in entry["items"]]  # one sheet, nothing tells
        assert "control" not in rows[0]
    positions = [i for entry in rounds for i, item in enumerate(entry["items"]) if item["control"]]
    assert any(p < len(entry["items"]) - 3 for p in positions)  # mixed in, not appended after the queries
    marked = {i for batch in session.state().batches for i in batch.control}
    assert marked == {item["id"] for entry in rounds for item in entry["items"] if item["control"]}
    status = session.status()["control"]
    assert status["drawn"] == 9 and status["asked"] == status["labels"] == len(marked)
    assert status["learner_labels"] == 6 + 9  # the shared start and every draw, all labeled


def test_a_draw_the_strategy_asked_about_reuses_its_label_instead_of_asking_again(tmp_path, one_thread):
    session = Session.start(tmp_path / "s", "moons", "entropy", options=FAST, dataset_options={"n_train": 40},
                            device="cpu", control=1)
    truth = TwoMoons(n_train=40).load(0).y_train
    answer(session, rounds=4, k=5, truth=truth)  # 40 items: the draws often land on labeled ones
    state = session.state()
    reused = 0
    for entry in state.history:
        if entry.get("event") != "query" or "control" not in entry:
            continue
        labeled_then = {x.id for batch in state.batches[:entry["batches"]] for x in batch.labels}
        queries = {item["id"] for item in entry["items"] if not item["control"]}
        asked = {item["id"] for item in entry["items"] if item["control"]}
        assert asked == set(entry["control"]) - labeled_then - queries
        reused += len(set(entry["control"]) & labeled_then)
    assert reused > 0
    held = holdings(state.history, state.batches)
    assert session.status()["control"]["learner_labels"] == len(held.control_labels(state.labels))


# -- who trains on what -----------------------------------------------------------------------------
def test_a_control_label_is_never_shown_to_the_strategys_training(tmp_path, one_thread):
    """Black box: every control item answered wrongly; the strategy's queries, guesses, trainings and
    accuracies must not change, while the control learner's do."""
    honest, misled = start(tmp_path / "honest"), start(tmp_path / "misled")
    answer(honest, rounds=4, k=6)
    answer(misled, rounds=4, k=6, flip=lambda item, asked: item["control"])
    assert without_times(honest.state().history) == without_times(misled.state().history)
    assert sum(len(b.control) for b in misled.state().batches) >= 12
    replay(honest)
    replay(misled)
    ours, theirs = control_lines(tmp_path / "honest"), control_lines(tmp_path / "misled")
    assert ours[0]["test_accuracy"] == theirs[0]["test_accuracy"]  # the shared start
    assert [e["labels_per_class"] for e in ours[1:]] != [e["labels_per_class"] for e in theirs[1:]]


def test_the_control_learner_never_sees_a_label_given_to_the_strategys_queries(tmp_path, one_thread):
    honest, misled = start(tmp_path / "honest"), start(tmp_path / "misled")
    answer(honest, rounds=4, k=6)
    flipped: set[int] = set()

    def strategy_only(item: Item, asked: Round) -> bool:  # the strategy's queries that this round did not draw
        if item["guess"] is None or item["control"] or item["id"] in (asked.control or ()):
            return False
        flipped.add(item["id"])
        return True

    answer(misled, rounds=4, k=6, flip=strategy_only)
    state = misled.state()
    assert len(flipped) >= 15 and not flipped & holdings(state.history, state.batches).taken()  # never drawn later
    assert without_times(trainings(honest)) != without_times(trainings(misled))
    assert without_times(replay(honest)) == without_times(replay(misled))


def test_the_control_learner_is_replayed_at_every_training_on_the_start_and_the_draws_before_it(tmp_path,
                                                                                               one_thread):
    session = start(tmp_path / "s")
    answer(session, rounds=4, k=6)
    lines = replay(session)
    ours = trainings(session)
    assert [line["training"] for line in lines] == [t["training"] for t in ours] == [1, 2, 3, 4]
    assert lines[0]["test_accuracy"] == ours[0]["test_accuracy"]  # the same start, seed and training
    assert [line["labels"] for line in lines] == [6, 12, 18, 24]  # the cold start, then 6 draws a round
    history = session.state().history
    for line in lines:
        at = next(i for i, e in enumerate(history) if e.get("event") == "train" and e["training"] == line["training"])
        ids = {item["id"] for e in history[:at] if e.get("event") == "query"
               for item in e["items"] if e["training"] is None or item["control"]}
        counts = {c: sum(1 for i in ids if session.classes[int(TRUTH[i])] == c) for c in session.classes}
        assert line["labels_per_class"] == counts  # exactly the people's labels of its start and its draws
    assert replay(session) == lines  # nothing left to replay


# -- the report -------------------------------------------------------------------------------------
def test_the_sessions_report_states_the_efficiency_boost_of_the_control_replay(tmp_path, one_thread):
    session = start(tmp_path / "s")
    answer(session, rounds=4, k=6)
    written = session_report(session, tmp_path / "report")
    (row,) = written.control_group
    assert (row["strategy"], row["control"]) == ("entropy", "random")
    lines = control_lines(tmp_path / "s")
    ours = [(float(t["labels"]), t["test_accuracy"]) for t in trainings(session)]
    expected = efficiency_boost(ours, [(float(lines[-1]["labels"]), lines[-1]["test_accuracy"])])
    assert {k: row[k] for k in expected} == expected
    text = written.markdown.read_text(encoding="utf-8")
    assert "### Against the control group" in text and "| entropy | random |" in text
    assert "The strategy's model never trained on a control label" in text
    records = [json.loads(line) for line in (tmp_path / "report" / "records.jsonl").read_text().splitlines()]
    assert budget_points(records[1]["curve"]) == [(float(x["labels"]), x["test_accuracy"]) for x in lines]


def test_a_session_without_a_control_group_reports_its_curve_and_how_to_get_the_boost(tmp_path, one_thread):
    session = start(tmp_path / "s", control=None)
    answer(session, rounds=2, k=6)
    written = session_report(session, tmp_path / "report")
    assert written.control_group == [] and not (tmp_path / "s" / CONTROL_FILE).exists()
    assert "start a labeling session with `--control F`" in written.markdown.read_text(encoding="utf-8")
    one_line_error(invoke("report", tmp_path / "s", "--out", tmp_path / "r"),
                   "a labeling session, not a directory of records; `sslzoo label report")
    assert invoke("report", tmp_path / "report", "--out", tmp_path / "r").exit_code == 0


@pytest.mark.slow
def test_a_simulated_session_on_mnist_reports_the_boost_computed_from_its_control_replay(tmp_path, one_thread):
    session = Session.start(tmp_path / "s", "mnist", "margin", options={"epochs": "15"},
                            dataset_options={"n_train": 2000, "n_test": 1000}, device="cpu", control=1)
    simulate(session, SimulatedLabeler(session), rounds=5, k=20)
    result = invoke("label", "report", tmp_path / "s", "--json", "-q")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["control_group"]
    lines = control_lines(tmp_path / "s")
    ours = trainings(session)
    assert [line["labels"] for line in lines] == [t["labels"] for t in ours] == [20, 40, 60, 80, 100]
    assert lines[0]["test_accuracy"] == ours[0]["test_accuracy"]
    assert min(lines[-1]["test_accuracy"], ours[-1]["test_accuracy"]) > 0.5  # 100 labels; chance is 0.1
    expected = efficiency_boost([(float(t["labels"]), t["test_accuracy"]) for t in ours],
                                [(float(lines[-1]["labels"]), lines[-1]["test_accuracy"])])
    assert {k: row[k] for k in expected} == expected
    control = session.status()["control"]
    assert control["drawn"] == 80 and control["asked"] == control["labels"] > 60  # 4 rounds of 20 draws
    text = (tmp_path / "s" / "report" / "report.md").read_text(encoding="utf-8")
    assert f"| margin | random | {100 * lines[-1]['test_accuracy']:.2f} % | 100 |" in text


# -- crash safety -----------------------------------------------------------------------------------
def test_a_replay_killed_midway_loses_nothing_and_goes_on(tmp_path, one_thread):
    directory = tmp_path / "s"
    session = start(directory, epochs="300")  # long enough a training to be killed midway
    answer(session, rounds=3, k=6)
    shutil.copytree(directory, tmp_path / "whole")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "sslzoo", "label", "report", str(directory)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert child.stderr is not None
    assert child.stderr.readline().startswith("control group: training 1 of 3")
    assert child.stderr.readline().startswith("control group: training 2 of 3")  # training 1 is replayed
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert [line["training"] for line in control_lines(directory)] == [1]
    resumed = replay(Session(directory))
    assert [line["training"] for line in resumed] == [1, 2, 3]
    assert without_times(resumed) == without_times(replay(Session(tmp_path / "whole")))


def test_a_kill_between_the_control_model_and_its_line_loses_nothing(tmp_path, one_thread):
    directory = tmp_path / "s"
    answer(start(directory), rounds=2, k=6)
    lines = replay(Session(directory))
    journal = directory / CONTROL_FILE
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines[:-1]))  # the last line never written
    told: list[str] = []
    assert replay(Session(directory, notify=told.append)) == lines
    assert told == []  # taken from the model that carries it, not trained again


def test_a_second_writer_is_refused_while_the_control_group_is_replayed(tmp_path, one_thread):
    directory = tmp_path / "s"
    session = start(directory)
    answer(session, rounds=2, k=6)
    with session.writing():
        one_line_error(invoke("label", "report", directory), "another sslzoo process is writing")
    assert not (directory / CONTROL_FILE).exists()


# -- data without a labeled test split ---------------------------------------------------------------
def npz_without_test_labels(path: Path, labeled: int = 80) -> Path:
    arrays = TwoMoons(**MOONS).load(0)
    y = np.full(MOONS["n_train"], -1, dtype=np.int64)
    y[:labeled] = arrays.y_train[:labeled].numpy()
    np.savez(path, x=arrays.x_train.numpy(), y=y)
    return path


def test_held_out_labels_measure_both_learners_and_are_never_trained_on_or_asked(tmp_path, one_thread):
    data = npz_without_test_labels(tmp_path / "mine.npz")
    result = invoke("label", "start", tmp_path / "s", "--dataset", data, "-s", "entropy", "-o", "epochs=60",
                    "--control", "1", "--holdout", "30", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "50 labeled, 30 more held out" in result.output and "measured on 30 held-out items" in result.output
    session = Session(tmp_path / "s")
    held = set(session.holdout)
    assert len(held) == 30 and held <= set(range(80))
    answer(session, rounds=3, k=6)
    asked = {item["id"] for q in session.state().queries() for item in q["items"]}
    assert not held & (asked | set(session.state().labels))
    lines = replay(session)
    for entry in (*trainings(session), *lines):
        assert entry["test_accuracy"] is not None and sum(map(sum, entry["confusion"])) == 30
    written = session_report(session, tmp_path / "report")
    assert "Accuracy is measured on 30 held-out items" in written.markdown.read_text(encoding="utf-8")
    one_line_error(invoke("label", "import", tmp_path / "s", write_labels(tmp_path / "x.csv", [(min(held), "0")])),
                   f"item {min(held)} is held out")


# -- bad options ------------------------------------------------------------------------------------
BAD_STARTS = [
    (["--control", "0"], "--control must be a fraction of each round's queries, more than 0 and at most 1"),
    (["--control", "1.5"], "got '1.5'"),
    (["--control", "half"], "got 'half'"),
    (["--control", "nan"], "got 'nan'"),
    (["--control", "1", "-s", "random"], "strategy 'random' has no control group: its queries are random already"),
    (["--holdout", "10"], "--holdout: the test split of dataset 'moons' is labeled"),
]


@pytest.mark.parametrize(("args", "message"), BAD_STARTS, ids=[" ".join(a) for a, _ in BAD_STARTS])
def test_a_bad_control_or_holdout_is_one_line_and_leaves_no_session(tmp_path, args, message):
    strategy = [] if "-s" in args else ["-s", "entropy"]
    one_line_error(invoke("label", "start", tmp_path / "s", "--dataset", "moons", *strategy, *args), message)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--control", "1"], "--control: the test split of dataset"),
    (["--holdout", "0"], "--holdout must be a whole number from 1 to 80"),
    (["--holdout", "81"], "got '81'"),
    (["--holdout", "ten"], "got 'ten'"),
], ids=["control without holdout", "holdout 0", "holdout too many", "holdout not a number"])
def test_data_without_test_labels_needs_a_valid_holdout_for_a_control_group(tmp_path, args, message):
    data = npz_without_test_labels(tmp_path / "mine.npz")
    one_line_error(invoke("label", "start", tmp_path / "s", "--dataset", data, "-s", "entropy", *args), message)
    assert not (tmp_path / "s").exists()


def test_the_report_needs_a_training_and_a_session_with_a_control_group_to_replay(tmp_path):
    start(tmp_path / "s")
    one_line_error(invoke("label", "report", tmp_path / "s"), "no training yet")
    with pytest.raises(SessionError, match="this session has no control group"):
        replay(start(tmp_path / "plain", control=None))
    assert ControlGroup.from_json(None) is None


# -- the docs ---------------------------------------------------------------------------------------
def test_the_labeling_guides_control_group_runs_as_written(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    (block,) = [b for b in _blocks(ROOT / "docs" / "labeling.md", "sh") if "--control" in b]
    commands = _label_commands(block)
    assert [c[1:3] for c in commands] == [["label", "start"], ["label", "simulate"], ["label", "status"],
                                          ["label", "report"]]
    for command in commands:
        result = invoke(*command[1:])
        assert result.exit_code == 0, (command, result.output)
    assert result.stdout.startswith("efficiency boost of entropy over its control group random: ")
    assert (tmp_path / "rehearsal-control" / "report" / "report.md").exists()
