"""Labeling sessions: a person (here a simulated labeler) as the oracle across days, crash-safe and
sealed from the hidden labels; bad input is one line and changes nothing."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sslzoo import create_model, hookimpl, scores
from sslzoo._cli.main import main
from sslzoo._contract.dataset import Arrays
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo._default_plugins.datasets import TwoMoons
from sslzoo._ops.inference import probabilities
from sslzoo.errors import OptionError, SessionError
from sslzoo.labeling import Session, SimulatedLabeler, simulate
from sslzoo.labeling.label_log import LABELS_FILE
from sslzoo.labeling.session import MODEL_FILE

ROOT = Path(__file__).resolve().parent.parent
MOONS = {"n_train": 300, "n_test": 500}
FAST = {"epochs": "60"}


def start(directory: Path, strategy: str = "entropy", registry: Registry | None = None, dataset: str = "moons",
          **options: str) -> Session:
    return Session.start(directory, dataset, strategy, options={**FAST, **options}, dataset_options=dict(MOONS),
                         device="cpu", registry=registry)


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def answered(session: Session, rounds: int = 1, k: int = 6) -> None:
    """``rounds`` rounds answered and imported by the simulated labeler, the last not yet trained on."""
    labeler = SimulatedLabeler(session)
    for _ in range(rounds):
        asked = session.next(k)
        session.import_labels(labeler.fill(asked.directory / "queries.csv", asked.directory / "answers.csv"),
                              labeler="tester")


def write_labels(path: Path, rows: list[tuple[object, object]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label"])
        writer.writerows(rows)
    return path


def registry_with_datasets(*datasets: type) -> Registry:
    class Plugin:
        @hookimpl
        def register_datasets(self, register):  # type: ignore[no-untyped-def]
            for dataset in datasets:
                register(dataset)

    return Registry(make_plugins(load="", extra=(Plugin(),)))


# -- the loop ---------------------------------------------------------------------------------------
def test_a_simulated_labeler_drives_a_session_from_a_cold_start_to_an_accurate_model(tmp_path, one_thread):
    session = start(tmp_path / "s")
    trainings = simulate(session, SimulatedLabeler(session), rounds=4, k=6)
    assert [t["labels"] for t in trainings] == [6, 12, 18, 24]
    rounds = session.status()["rounds"]
    assert [r["strategy"] for r in rounds] == ["random", "entropy", "entropy", "entropy"]  # a cold start first
    assert trainings[-1]["test_accuracy"] >= 0.9  # two moons from 24 labels (0.964 here; chance is 0.5)
    assert session.status()["labels"] == 24 and session.status()["model_current"]


def test_queries_are_the_strategys_choice_with_the_models_guesses(tmp_path, one_thread):
    session = start(tmp_path / "s")
    answered(session)
    asked = session.next(8)
    assert asked.strategy == "entropy" and asked.training == 1
    # the strategy's select on the pool: the 8 ids of highest predictive entropy under the saved model
    model = create_model("moons_mlp", (2,), 2)
    model.load_state_dict(torch.load(tmp_path / "s" / MODEL_FILE, weights_only=True)["state_dict"])
    x = TwoMoons(**MOONS).load(0).x_train.float()
    pool = torch.tensor(sorted(set(range(MOONS["n_train"])) - set(session.state().labels)))
    probs = probabilities(model, x, pool)
    top = pool[scores.entropy(probs).argsort(descending=True)[:8]]
    assert sorted(item["id"] for item in asked.items) == sorted(top.tolist())
    guess = probs.argmax(1)
    for item in asked.items:
        position = int((pool == item["id"]).nonzero())
        assert item["guess"] == str(int(guess[position]))
        assert item["confidence"] == pytest.approx(float(probs[position].max()), abs=1e-4)
        assert item["difficulty"] in ("easy", "medium", "hard")
    assert {item["difficulty"] for item in asked.items} == {"hard"}  # the most uncertain third of the pool


def test_asking_again_before_new_labels_gives_the_same_round(tmp_path, one_thread):
    session = start(tmp_path / "s")
    answered(session)
    first = session.next(5)
    again = Session(tmp_path / "s").next(5)  # another day, another process
    assert again.reused and again.number == first.number and again.items == first.items
    other = session.next(3)
    assert not other.reused and other.number == first.number + 1


def test_the_same_seed_gives_the_same_session_in_one_process_or_many(tmp_path, one_thread):
    one = start(tmp_path / "one")
    simulate(one, SimulatedLabeler(one), rounds=2, k=5)
    many = start(tmp_path / "many")
    for _ in range(2):  # each step in a fresh Session object, as separate commands would be
        answered(Session(tmp_path / "many"), rounds=1, k=5)
    Session(tmp_path / "many").train()
    assert [q["items"] for q in one.state().queries()] == [q["items"] for q in many.state().queries()]
    assert [t["test_accuracy"] for t in one.status()["trainings"]] == \
        [t["test_accuracy"] for t in many.status()["trainings"]]


# -- the sealed oracle ------------------------------------------------------------------------------
def test_a_session_reads_no_hidden_label_but_those_its_labeler_gave(tmp_path, one_thread):
    """Black box: permute the hidden labels of every item the labeler was never asked about; the
    session must behave identically (queries, guesses, accuracy)."""
    session = start(tmp_path / "real")
    simulate(session, SimulatedLabeler(session), rounds=3, k=6)
    asked = {item["id"] for r in session.state().queries() for item in r["items"]}

    class Shuffled(TwoMoons):
        name = "moons_shuffled"

        def load(self, seed: int) -> Arrays:
            arrays = super().load(seed)
            others = torch.tensor(sorted(set(range(arrays.y_train.numel())) - asked))
            y = arrays.y_train.clone()
            y[others] = 1 - y[others]  # every label nobody asked for is flipped
            return Arrays(arrays.x_train, y, arrays.x_test, arrays.y_test)

    shuffled = start(tmp_path / "shuffled", registry=registry_with_datasets(Shuffled), dataset="moons_shuffled")
    simulate(shuffled, SimulatedLabeler(shuffled), rounds=3, k=6)
    strip = [{k: v for k, v in e.items() if k not in ("at", "wall_seconds")} for e in session.state().history]
    assert strip == [{k: v for k, v in e.items() if k not in ("at", "wall_seconds")}
                     for e in shuffled.state().history]


def test_a_persons_own_labels_are_the_start_and_the_rest_is_the_pool(tmp_path, one_thread):
    class Partly(TwoMoons):
        name = "partly_labeled"
        labels_given = True

        def load(self, seed: int) -> Arrays:
            arrays = super().load(seed)
            y = torch.full_like(arrays.y_train, -1)
            y[:10] = arrays.y_train[:10]
            return Arrays(arrays.x_train, y, arrays.x_test, arrays.y_test)

    session = start(tmp_path / "s", registry=registry_with_datasets(Partly), dataset="partly_labeled")
    batch = session.state().batches[0]
    assert [x.id for x in batch.labels] == list(range(10)) and {x.by for x in batch.labels} == {"given"}
    asked = session.next(4)  # trains on the given labels first: no cold start
    assert asked.strategy == "entropy" and asked.training == 1
    assert all(item["id"] >= 10 for item in asked.items)
    with pytest.raises(SessionError, match="no label in the dataset"):
        SimulatedLabeler(session).fill(asked.directory / "queries.csv", tmp_path / "answers.csv")


# -- what a person reads ----------------------------------------------------------------------------
def test_a_round_writes_queries_to_fill_in_and_auto_labels_hard_first(tmp_path, one_thread):
    session = start(tmp_path / "s")
    answered(session)
    asked = session.next(5)
    names = sorted(f.name for f in asked.files)
    assert names == ["autolabels.csv", "label-studio-config.xml", "label-studio-tasks.json", "queries.csv"]
    rows = list(csv.DictReader(open(asked.directory / "queries.csv")))
    assert [r["id"] for r in rows] == [str(item["id"]) for item in asked.items]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5"] and all(r["label"] == "" for r in rows)
    auto = list(csv.DictReader(open(asked.directory / "autolabels.csv")))
    assert len(auto) == MOONS["n_train"] - 6 - 5  # the rest of the pool: neither labeled nor queried
    assert not {r["id"] for r in auto} & {r["id"] for r in rows}
    confidence = [float(r["confidence"]) for r in auto]
    assert confidence == sorted(confidence)
    assert auto[0]["difficulty"] == "hard" and auto[-1]["difficulty"] == "easy"


def test_image_rounds_have_a_contact_sheet_and_label_studio_tasks_with_pre_annotations(tmp_path, one_thread):
    session = Session.start(tmp_path / "s", "mnist", "margin", options={"epochs": "2"},
                            dataset_options={"n_train": 400, "n_test": 200}, device="cpu")
    cold = session.next(4)
    assert "queries.png" in {f.name for f in cold.files}
    tasks = json.loads((cold.directory / "label-studio-tasks.json").read_text())
    assert all("predictions" not in t for t in tasks)  # no model yet: nothing to pre-annotate
    session.import_labels(SimulatedLabeler(session).fill(cold.directory / "queries.csv", tmp_path / "a.csv"))
    asked = session.next(6)
    png = (asked.directory / "queries.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    tasks = json.loads((asked.directory / "label-studio-tasks.json").read_text())
    assert [t["data"]["sslzoo_id"] for t in tasks] == [item["id"] for item in asked.items]
    assert all(t["data"]["image"].startswith("data:image/png;base64,") for t in tasks)
    for task, item in zip(tasks, asked.items):
        (prediction,) = task["predictions"]
        assert prediction["score"] == item["confidence"]
        assert prediction["result"][0]["value"] == {"choices": [item["guess"]]}
    config = (asked.directory / "label-studio-config.xml").read_text()
    assert '<Image name="item" value="$image"/>' in config
    assert all(f'<Choice value="{c}"/>' in config for c in "0123456789")


# -- imports ----------------------------------------------------------------------------------------
def test_a_filled_in_queries_csv_imports_with_who_and_when(tmp_path, one_thread):
    session = start(tmp_path / "s")
    asked = session.next(4)
    rows = list(csv.DictReader(open(asked.directory / "queries.csv")))
    rows[0]["label"], rows[2]["label"] = "1", "0"  # a partial answer: two of four labeled today
    with open(tmp_path / "day1.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    result = invoke("label", "import", tmp_path / "s", tmp_path / "day1.csv", "--labeler", "alice")
    assert result.exit_code == 0, result.output
    assert "imported 2 labels" in result.output and "by alice" in result.output
    (batch,) = session.state().batches
    assert [(x.id, x.label, x.by) for x in batch.labels] == [(int(rows[0]["id"]), "1", "alice"),
                                                            (int(rows[2]["id"]), "0", "alice")]
    assert batch.round == 1 and batch.imported.endswith("+00:00")


def test_a_label_already_in_the_ledger_is_left_out_of_a_growing_export(tmp_path, one_thread):
    session = start(tmp_path / "s")
    session.import_labels(write_labels(tmp_path / "a.csv", [(3, "0"), (4, "1")]))
    imported = session.import_labels(write_labels(tmp_path / "b.csv", [(3, "0"), (4, "1"), (5, "1")]))
    assert imported.already == 2 and [x.id for x in imported.batch.labels] == [5]


def test_label_studios_csv_export_names_items_by_sslzoo_id_not_by_its_task_id(tmp_path):
    session = start(tmp_path / "s")
    export = tmp_path / "project-1.csv"
    export.write_text("annotation_id,annotator,id,image,label,sslzoo_id\n1,7,1,data:...,1,42\n2,7,2,data:...,,43\n")
    (label,) = session.import_labels(export).batch.labels
    assert (label.id, label.label, label.by) == (42, "1", "7")


BAD_IMPORTS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("an unknown id", lambda d: write_labels(d / "x.csv", [(3, "0"), (300, "1")]),
     "id 300 is not an item of this session (its ids are 0 to 299)"),
    ("a negative id", lambda d: write_labels(d / "x.csv", [(-2, "1")]), "id -2 is not an item"),
    ("an unknown class", lambda d: write_labels(d / "x.csv", [(3, "0"), (4, "2")]), "unknown class '2'"),
    ("an id that is not a number", lambda d: write_labels(d / "x.csv", [("seven", "1")]),
     "id 'seven' is not a whole number"),
    ("a label contradicting the ledger", lambda d: write_labels(d / "x.csv", [(1, "1")]),
     "item 1 is labeled '0' in batch 0"),
    ("one item labeled twice differently", lambda d: write_labels(d / "x.csv", [(7, "0"), (7, "1")]),
     "item 7 is labeled both '0' and '1'"),
    ("no label column", lambda d: (d / "x.csv").write_text("id,guess\n3,1\n") and d / "x.csv",
     "needs the columns id and label; it has no label"),
    ("nothing new", lambda d: write_labels(d / "x.csv", [(1, "0"), (2, "")]), "no new labels"),
    ("a file that is not text", lambda d: (d / "x.csv").write_bytes(b"\xff\xfe\x00id") and d / "x.csv",
     "not a text file"),
    ("a missing file", lambda d: d / "absent.csv", "cannot read"),
    ("a Label Studio task not exported by sslzoo", lambda d: (d / "x.json").write_text(
        json.dumps([{"id": 9, "data": {"image": "a.png"}, "annotations": []}])) and d / "x.json",
     "task 9: no data.sslzoo_id"),
    ("a Label Studio annotation with two classes", lambda d: (d / "x.json").write_text(json.dumps(
        [{"id": 9, "data": {"sslzoo_id": 4}, "annotations": [{"result": [
            {"type": "choices", "value": {"choices": ["0", "1"]}}]}]}])) and d / "x.json",
     "chooses 2 classes"),
]


@pytest.mark.parametrize(("case", "make", "message"), BAD_IMPORTS, ids=[c[0] for c in BAD_IMPORTS])
def test_a_bad_import_is_one_line_and_changes_nothing(tmp_path, case, make, message):
    directory = tmp_path / "s"
    session = start(directory)
    session.import_labels(write_labels(tmp_path / "first.csv", [(1, "0")]))
    before = (directory / LABELS_FILE).read_bytes()
    result = invoke("label", "import", directory, make(tmp_path))
    one_line_error(result, message)
    assert (directory / LABELS_FILE).read_bytes() == before


def test_a_labels_file_imported_twice_is_refused_and_changes_nothing(tmp_path):
    directory = tmp_path / "s"
    start(directory)
    labels = write_labels(tmp_path / "day1.csv", [(1, "0"), (2, "1")])
    assert invoke("label", "import", directory, labels).exit_code == 0
    before = (directory / LABELS_FILE).read_bytes()
    one_line_error(invoke("label", "import", directory, labels), "day1.csv: already imported on", "as batch 0")
    assert (directory / LABELS_FILE).read_bytes() == before


def test_a_corrupt_image_is_one_line_and_changes_nothing(tmp_path, monkeypatch):
    from tests.user_data import image_folder

    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(tmp_path / "cache"))
    photos = image_folder(tmp_path)
    corrupt = photos / "unlabeled" / "u999.png"
    corrupt.write_bytes(b"\x89PNG but not really")
    start_args = ["label", "start", tmp_path / "s", "--dataset", photos, "-d", f"unlabeled={photos / 'unlabeled'}",
                  "-s", "margin", "-o", "epochs=2"]
    one_line_error(invoke(*start_args), "u999.png")
    assert not (tmp_path / "s").exists()
    corrupt.unlink()
    assert invoke(*start_args).exit_code == 0
    files = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()}
    corrupt.write_bytes(b"\x89PNG but not really")  # an image that broke after the session started
    one_line_error(invoke("label", "next", tmp_path / "s", "-k", "4"), "u999.png")
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()} == files


# -- crash safety -----------------------------------------------------------------------------------
def test_a_session_killed_mid_retrain_resumes_without_losing_an_imported_label(tmp_path, one_thread):
    directory = tmp_path / "s"
    session = start(directory, epochs="1000")  # long enough a training to be killed midway
    answered(session, rounds=1, k=6)
    ledger = (directory / LABELS_FILE).read_bytes()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-m", "sslzoo", "label", "train", str(directory)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert child.stderr is not None
    line = child.stderr.readline()  # "training 1 on 6 labels ...": the training has started
    assert line.startswith("training 1 on 6 labels"), line
    time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL  # killed, not finished
    assert not (directory / MODEL_FILE).exists()
    assert (directory / LABELS_FILE).read_bytes() == ledger
    resumed = Session(directory)
    assert resumed.status()["labels"] == 6 and not resumed.status()["model_current"]
    entry = resumed.train()
    assert entry is not None and entry["labels"] == 6 and resumed.status()["model_current"]


def test_an_import_torn_by_a_kill_is_ignored_and_can_be_made_again(tmp_path):
    directory = tmp_path / "s"
    session = start(directory)
    labels = write_labels(tmp_path / "day1.csv", [(1, "0"), (2, "1")])
    with open(directory / LABELS_FILE, "ab") as handle:
        handle.write(b'{"batch":0,"source":"day1.csv","imp')  # a kill inside the write of the line
    assert session.status()["labels"] == 0
    assert len(session.import_labels(labels).batch.labels) == 2
    assert [b.number for b in session.state().batches] == [0]


def test_a_second_writer_is_refused_while_a_session_is_busy(tmp_path):
    directory = tmp_path / "s"
    session = start(directory)
    labels = write_labels(tmp_path / "day1.csv", [(1, "0")])
    with session.writing():
        one_line_error(invoke("label", "import", directory, labels), "another sslzoo process is writing")
    assert invoke("label", "import", directory, labels).exit_code == 0


# -- starting ---------------------------------------------------------------------------------------
BAD_STARTS = [
    (["--strategy", "pseudo_label"], "strategy 'pseudo_label' does not ask a labeler"),
    (["--strategy", "least_confidence+self_training"], "pseudo-labels whole rounds"),
    (["--strategy", "entropy", "-o", "query_size=5"], "option query_size is not set in a labeling session"),
    (["--strategy", "entropy", "-o", "epochs=many"], "epochs"),
    (["--strategy", "entrpy"], "did you mean entropy"),
    (["--strategy", "entropy", "--dataset", "moon"], "did you mean moons"),
]


@pytest.mark.parametrize(("args", "message"), BAD_STARTS, ids=[m for _, m in BAD_STARTS])
def test_a_bad_start_is_one_line_and_leaves_no_session(tmp_path, args, message):
    options = ["--dataset", "moons", *args] if "--dataset" not in args else args
    one_line_error(invoke("label", "start", tmp_path / "s", *options), message)
    assert not (tmp_path / "s").exists()


def test_a_session_is_not_started_over_another_directory(tmp_path):
    start(tmp_path / "s")
    one_line_error(invoke("label", "start", tmp_path / "s", "--dataset", "moons", "-s", "entropy"),
                   "already a labeling session")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    one_line_error(invoke("label", "start", tmp_path / "other", "--dataset", "moons", "-s", "entropy"),
                   "not an empty directory")
    one_line_error(invoke("label", "next", tmp_path / "other"), "not a labeling session")


def test_commands_read_a_session_a_person_can_follow(tmp_path, one_thread):
    directory = tmp_path / "s"
    result = invoke("label", "start", directory, "--dataset", "moons", "-s", "margin", "-d", "n_train=200",
                    "-o", "epochs=40", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "0 labeled" in result.output
    result = invoke("label", "simulate", directory, "--rounds", "2", "-k", "5", "--noise", "0.2", "-q")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("training 1: 5 labels, test accuracy")
    noisy = {x.by for b in Session(directory).state().batches for x in b.labels}
    assert noisy == {"simulated (noise 0.2)"}
    result = invoke("label", "next", directory, "-k", "3", "-q")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "round 3: 3 queries by margin (guesses of training 2)"
    status = json.loads(invoke("label", "status", directory, "--json").output)
    assert status["labels"] == 10 and len(status["pending"]) == 3


def test_a_simulated_labeler_is_wrong_at_its_noise_rate():
    class Session_:
        spec = {"dataset": "moons", "dataset_options": {"n_train": 4000}, "seed": 0}
        classes = ["0", "1"]
        registry = Registry(make_plugins(load=""))

    truth = TwoMoons(n_train=4000).load(0).y_train
    labeler = SimulatedLabeler(Session_(), noise=0.25, seed=3)  # type: ignore[arg-type]
    wrong = sum(labeler.answer(i) != str(int(truth[i])) for i in range(4000)) / 4000
    assert 0.22 < wrong < 0.28
    with pytest.raises(OptionError, match="--noise must be between 0 and 1"):
        SimulatedLabeler(Session_(), noise=1.5)  # type: ignore[arg-type]


# -- the docs ---------------------------------------------------------------------------------------
def _blocks(path: Path, lang: str) -> list[str]:
    from tests.test_docs import fenced_blocks

    return [b.body for b in fenced_blocks(path.read_text(encoding="utf-8")) if b.lang == lang]


def _label_commands(block: str) -> list[list[str]]:
    import shlex

    return [shlex.split(line.partition("#")[0]) for line in block.splitlines() if line.strip()]


USAGE_LABEL_BLOCKS = [b for b in _blocks(ROOT / "docs" / "usage.md", "sh") if "sslzoo label" in b]


def test_a_newcomer_goes_from_a_folder_of_images_to_the_first_queries_in_three_commands(tmp_path, monkeypatch,
                                                                                       one_thread):
    from tests.user_data import image_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SSLZOO_CACHE_DIR", str(tmp_path / "cache"))
    image_folder(tmp_path)  # photos/square, photos/cross, photos/unlabeled and test/, as the guide lays them out
    first, then, _ = (_label_commands(b) for b in USAGE_LABEL_BLOCKS)
    assert [c[:3] for c in first] == [["sslzoo", "label", "start"], ["sslzoo", "label", "train"],
                                      ["sslzoo", "label", "next"]]
    outputs = []
    for command in first:  # literally, as a newcomer types them
        result = invoke(*command[1:])
        assert result.exit_code == 0, (command, result.output)
        outputs.append(result.stdout)
    assert "24 labeled" in outputs[0] and "training 1: 24 labels, test accuracy" in outputs[1]
    assert outputs[2].startswith("round 1: 8 queries by margin (guesses of training 1)")
    round_1 = tmp_path / "labels" / "round-1"
    rows = list(csv.DictReader(open(round_1 / "queries.csv")))
    assert len(rows) == 8 and all(r["item"].startswith(str(tmp_path / "photos" / "unlabeled")) for r in rows)
    assert all(r["guess"] in ("square", "cross") and r["label"] == "" for r in rows)
    assert (round_1 / "queries.png").read_bytes().startswith(b"\x89PNG")
    # the person's answers (an unlabeled image u007.png is a square when 7 is even: tests/user_data.py)
    write_labels(round_1 / "queries.csv", [(r["id"], ("square", "cross")[int(Path(r["item"]).stem[1:]) % 2])
                                           for r in rows])
    assert [c[:3] for c in then] == [["sslzoo", "label", "import"], ["sslzoo", "label", "next"]]
    for command in then:
        result = invoke(*command[1:])
        assert result.exit_code == 0, (command, result.output)
    assert result.stdout.startswith("round 2: 8 queries by margin (guesses of training 2)")
    assert Session(tmp_path / "labels").status()["trainings"][-1]["labels"] == 32


def test_the_usage_guides_rehearsal_runs_as_written(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    commands = _label_commands(USAGE_LABEL_BLOCKS[2])
    assert [c[2] for c in commands] == ["start", "simulate", "next"]
    for command in commands:
        result = invoke(*command[1:])
        assert result.exit_code == 0, (command, result.output)
    assert result.stdout.startswith("round 3: 20 queries by margin (guesses of training 2)")
    assert (tmp_path / "rehearsal" / "round-3" / "queries.png").exists()


def test_the_python_example_of_the_labeling_guide_runs(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    (block,) = _blocks(ROOT / "docs" / "labeling.md", "python")
    exec(compile(block.replace('"entropy", options', '"entropy", device="cpu", options'), "labeling.md", "exec"), {})
    assert Session(tmp_path / "labels").status()["labels"] == 40
