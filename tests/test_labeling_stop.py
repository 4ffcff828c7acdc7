"""A labeling session's stopping criterion: the predictions it judges kept at each training, its verdict
replayed from them in any later process, said by `label next`, `label status` and `label simulate`
("you may stop: ...") while the rounds go on; a bad criterion is one line at the start."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from sslzoo import create_model
from sslzoo._default_plugins.datasets import TwoMoons
from sslzoo._ops.inference import probabilities
from sslzoo.labeling import Session, SimulatedLabeler, simulate
from sslzoo.labeling.replay import report as session_report
from sslzoo.labeling.session import MODEL_FILE
from sslzoo.labeling.stop_log import STOP_DIR
from tests.test_labeling import FAST, MOONS, ROOT, _blocks, _label_commands, answered, invoke, one_line_error, start

STABILIZING = "stabilizing_predictions:kappa=0.7,window=2,stop_set=100"
"""Loose enough to fire within 3 trainings of 6 labels more each on two moons (at the 3rd here)."""


def kept(directory: Path) -> list[dict[str, Any]]:
    """The predictions kept for the criterion, in training order."""
    paths = sorted((directory / STOP_DIR).glob("training-*.pt"), key=lambda p: int(p.stem.partition("-")[2]))
    return [torch.load(path, weights_only=True) for path in paths]


def first_stabilized(saved: list[dict[str, Any]], kappa: float, window: int) -> int | None:
    """Bloodgood & Vijay-Shanker's rule from scikit-learn's Cohen's kappa (with every class, as small-text
    passes ``labels``): the first training whose last ``window`` agreements with the training before
    average at least ``kappa``."""
    labels = [s["probs"].argmax(1).numpy() for s in saved]
    agreements = [cohen_kappa_score(a, b, labels=[0, 1]) for a, b in zip(labels, labels[1:])]
    for n in range(window, len(agreements) + 1):
        if sum(agreements[n - window:n]) / window >= kappa:
            return saved[n]["training"]
    return None


def test_label_next_says_you_may_stop_once_the_criterion_fires_and_still_offers_the_round(tmp_path, one_thread):
    directory = tmp_path / "s"
    result = invoke("label", "start", directory, "--dataset", "moons", "-d", "n_train=300", "-d", "n_test=500",
                    "-s", "entropy", "-o", "epochs=60", "--device", "cpu", "--stop", STABILIZING)
    assert result.exit_code == 0, result.output
    assert f"stopping criterion: {STABILIZING}" in result.output
    result = invoke("label", "simulate", directory, "--rounds", "3", "-k", "6", "-q")
    assert result.exit_code == 0, result.output
    fired = first_stabilized(kept(directory), 0.7, 2)  # scikit-learn's kappa over the predictions kept
    assert fired is not None
    line = f"you may stop: stabilizing_predictions fired after training {fired} ({6 * fired} labels): mean Cohen's "
    assert result.output.splitlines()[-1].startswith(line)  # simulate reports it after its trainings
    assert result.output.splitlines()[-1].endswith("of the last 2 rounds' predictions on 100 ids ≥ 0.7")

    asked = invoke("label", "next", directory, "-k", "3", "-q")
    assert asked.exit_code == 0, asked.output
    lines = asked.output.splitlines()
    assert lines[0] == result.output.splitlines()[-1]  # first, before the round's items
    assert lines[1] == "round 4: 3 queries by entropy (guesses of training 3)"  # the round is offered all the same
    status = invoke("label", "status", directory)
    assert lines[0] in status.output.splitlines()
    stop = json.loads(invoke("label", "status", directory, "--json").output)["stop"]
    assert stop == json.loads(invoke("label", "next", directory, "-k", "3", "--json").output)["stop"]
    assert {k: stop[k] for k in ("criterion", "options", "training", "labels")} == {
        "criterion": "stabilizing_predictions", "options": {"stop_set": 100, "kappa": 0.7, "window": 2},
        "training": fired, "labels": 6 * fired}


def test_a_session_without_a_criterion_or_before_it_fires_says_nothing_new(tmp_path, one_thread):
    plain = start(tmp_path / "plain")
    strict = start(tmp_path / "strict", stop="stabilizing_predictions:kappa=1.0,window=3")
    for session in (plain, strict):
        simulate(session, SimulatedLabeler(session), rounds=3, k=6)
        asked = invoke("label", "next", session.directory, "-k", "3", "-q")
        assert asked.exit_code == 0 and "you may stop" not in asked.output, asked.output
        assert asked.output.startswith("round 4: 3 queries by entropy")
        assert "you may stop" not in invoke("label", "status", session.directory).output
        assert json.loads(invoke("label", "status", session.directory, "--json").output)["stop"] is None
        assert json.loads(invoke("label", "next", session.directory, "-k", "3", "--json").output)["stop"] is None
    assert not (tmp_path / "plain" / STOP_DIR).exists()
    assert [s["training"] for s in kept(tmp_path / "strict")] == [1, 2, 3]  # kept, judged, not fired


def test_the_verdict_is_the_same_whether_the_session_took_one_process_or_many(tmp_path, one_thread):
    one = start(tmp_path / "one", stop=STABILIZING)
    simulate(one, SimulatedLabeler(one), rounds=4, k=6)
    start(tmp_path / "many", stop=STABILIZING)
    for _ in range(4):  # each step a fresh Session, as separate commands are
        answered(Session(tmp_path / "many"), rounds=1, k=6)
    Session(tmp_path / "many").train()
    assert one.stopped() is not None
    assert Session(tmp_path / "many").stopped() == Session(tmp_path / "one").stopped() == one.stopped()
    for a, b in zip(kept(tmp_path / "one"), kept(tmp_path / "many"), strict=True):
        assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["probs"], b["probs"])


def test_the_stop_set_is_drawn_at_the_first_training_as_a_benchmark_draws_it_and_kept(tmp_path, one_thread):
    session = start(tmp_path / "s", stop="stabilizing_predictions:stop_set=40")
    simulate(session, SimulatedLabeler(session), rounds=3, k=6)
    saved = kept(tmp_path / "s")
    first_labels = {x.id for x in session.state().batches[0].labels}
    pool = torch.tensor([i for i in range(MOONS["n_train"]) if i not in first_labels])
    drawn = pool[torch.randperm(pool.numel(), generator=torch.Generator().manual_seed(0))[:40]]
    assert all(torch.equal(s["ids"], drawn) for s in saved)  # labeled or not since, the same ids


def test_the_kept_predictions_are_the_trained_models_class_probabilities_on_the_pool(tmp_path, one_thread):
    session = start(tmp_path / "s", stop="overall_uncertainty")
    simulate(session, SimulatedLabeler(session), rounds=2, k=6)
    last = kept(tmp_path / "s")[-1]
    assert (last["training"], last["batches"], last["labels"]) == (2, 2, 12)
    pool = sorted(set(range(MOONS["n_train"])) - set(session.state().labels))
    assert last["ids"].tolist() == pool and last["probs"].dtype == torch.float32
    model = create_model("moons_mlp", (2,), 2)
    model.load_state_dict(torch.load(tmp_path / "s" / MODEL_FILE, weights_only=True)["state_dict"])
    x = TwoMoons(**MOONS).load(0).x_train.float()
    assert torch.allclose(last["probs"], probabilities(model, x, last["ids"]), atol=1e-6)


def test_a_retraining_on_the_same_labels_takes_the_place_of_the_one_before(tmp_path, one_thread):
    """A model retrained on the labels it had agrees with itself; the criterion must not count that as
    a stabilized round: window 1 would fire on it."""
    session = start(tmp_path / "s", stop="stabilizing_predictions:kappa=0.99,window=1,stop_set=100")
    simulate(session, SimulatedLabeler(session), rounds=2, k=6)
    assert first_stabilized(kept(tmp_path / "s"), 0.99, 1) is None  # trainings 1 and 2 disagree
    assert session.train(force=True)["training"] == 3
    assert [s["batches"] for s in kept(tmp_path / "s")] == [1, 2, 2]
    assert session.stopped() is None  # judged: training 1, then training 3 in training 2's place
    assert first_stabilized(kept(tmp_path / "s"), 0.99, 1) == 3  # what counting both would say


def test_a_training_killed_before_its_model_was_saved_is_left_out(tmp_path, one_thread):
    session = start(tmp_path / "s", stop="stabilizing_predictions:kappa=0.5,window=1,stop_set=100")
    simulate(session, SimulatedLabeler(session), rounds=1, k=6)
    folder = tmp_path / "s" / STOP_DIR
    orphan = {**torch.load(folder / "training-1.pt", weights_only=True), "training": 2, "batches": 2, "labels": 12}
    torch.save(orphan, folder / "training-2.pt")  # training 2's predictions kept, then killed before model.pt
    assert session.stopped() is None  # the saved model is training 1's: training 2 did not happen
    simulate(session, SimulatedLabeler(session), rounds=1, k=6)  # training 2 again, its file replaced
    assert kept(tmp_path / "s")[1]["labels"] == 12


BAD_STOPS = [
    (["--stop", "bogus"], "unknown stopping criterion 'bogus'; known: classification_change"),
    (["--stop", "stabilising_predictions"], "did you mean stabilizing_predictions?"),
    (["--stop", "stabilizing_predictions:kapa=0.5"], "has no option 'kapa' (did you mean kappa?)"),
    (["--stop", "stabilizing_predictions:kappa=2"], "option kappa='2' of stopping criterion"),
    (["--stop", "overall_uncertainty:threshold=1"], "it must be below 1"),
    (["--stop", ":kappa=0.5"], "names no stopping criterion"),
    (["-o", "stop=bogus"], "unknown stopping criterion 'bogus'"),
    (["--stop", "max_confidence", "-o", "stop=overall_uncertainty"], "--stop max_confidence and -o stop="),
]


@pytest.mark.parametrize(("args", "message"), BAD_STOPS, ids=[m for _, m in BAD_STOPS])
def test_a_bad_criterion_is_one_line_and_leaves_no_session(tmp_path, args, message):
    one_line_error(invoke("label", "start", tmp_path / "s", "--dataset", "moons", "-s", "entropy", *args), message)
    assert not (tmp_path / "s").exists()


def test_the_python_api_names_the_criterion_as_the_training_option_stop(tmp_path, one_thread):
    session = Session.start(tmp_path / "s", "moons", "margin", options={**FAST, "stop": STABILIZING},
                            dataset_options=dict(MOONS), device="cpu")
    assert session.stop_option == STABILIZING
    simulate(session, SimulatedLabeler(session), rounds=1, k=6)
    asked = session.next(4)
    assert asked.stop is None and session.status()["stop"] is None  # one training: nothing to compare yet


def test_the_labeling_guides_stopping_example_runs_as_written(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    guide = ROOT / "docs" / "labeling.md"
    (block,) = [b for b in _blocks(guide, "sh") if "--stop" in b]
    commands = _label_commands(block)
    assert [c[1:3] for c in commands] == [["label", "start"], ["label", "simulate"], ["label", "next"]]
    for command in commands:
        result = invoke(*command[1:])
        assert result.exit_code == 0, (command, result.output)
    (shown,) = [b for b in _blocks(guide, "text") if b.startswith("you may stop: ")]
    assert [re.sub(r"\d", "#", line) for line in result.stdout.splitlines()[:2]] == \
        [re.sub(r"\d", "#", line) for line in shown.splitlines()]  # the figures as another CPU may give them


def test_the_sessions_report_says_where_its_criterion_fired(tmp_path, one_thread):
    session = start(tmp_path / "s", stop=STABILIZING)
    simulate(session, SimulatedLabeler(session), rounds=3, k=6)
    stop = session.stopped()
    assert stop is not None
    text = session_report(session).markdown.read_text()
    assert (f"Its stopping criterion `{STABILIZING}` fired after training {stop['training']} ({stop['labels']} "
            f"labels): {stop['why']}.") in text
