"""The Label Studio round trip against a real server (its own environment, see
``tests/label_studio_server.py``): a round's tasks with pre-annotations go in, a team annotates
them through the API, the project's JSON export comes back into the session, which retrains."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from sslzoo._cli.main import main
from sslzoo.labeling import Session, SimulatedLabeler
from tests import label_studio_server

DRIVER = Path(__file__).with_name("label_studio_driver.py")
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def label_studio():
    reason = label_studio_server.install()
    if reason is not None:
        pytest.skip(reason)
    with label_studio_server.fresh_server() as url:
        yield url


def test_queries_go_to_label_studio_and_its_annotations_come_back_to_retrain(tmp_path, label_studio, one_thread):
    directory = tmp_path / "session"
    session = Session.start(directory, "mnist", "margin", options={"epochs": "3"},
                            dataset_options={"n_train": 500, "n_test": 500}, device="cpu")
    labeler = SimulatedLabeler(session)
    cold = session.next(10)
    session.import_labels(labeler.fill(cold.directory / "queries.csv", tmp_path / "first.csv"))
    asked = session.next(8)  # trains on the first 10 labels, then asks
    # the team labels 6 of the 8 tasks in Label Studio
    answers = {str(item["id"]): labeler.answer(item["id"]) for item in asked.items[:6]}
    (asked.directory / "answers.json").write_text(json.dumps(answers))
    done = subprocess.run([str(label_studio_server.python(label_studio_server.home())), str(DRIVER), label_studio,
                           label_studio_server.TOKEN, str(asked.directory)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    held = json.loads(done.stdout.splitlines()[-1])["scores"]
    # the server holds every task with the model's guess as a pre-annotation scored by its confidence
    assert held == {str(item["id"]): [item["confidence"]] for item in asked.items}

    result = CliRunner().invoke(main, ["label", "import", str(directory), str(asked.directory / "export.json")])
    assert result.exit_code == 0, result.output
    assert "imported 6 labels" in result.output and "by label-studio user 1" in result.output
    batch = session.state().batches[-1]
    assert {str(x.id): x.label for x in batch.labels} == answers
    assert all(x.at.startswith("20") and x.at != batch.imported for x in batch.labels)  # the annotation's time
    again = CliRunner().invoke(main, ["label", "import", str(directory), str(asked.directory / "export.json")])
    assert again.exit_code == 1 and "already imported" in again.output

    after = session.next(5)  # retrains on the 16 labels, then asks again
    training = session.status()["trainings"][-1]
    assert training["labels"] == 16 and after.training == training["training"] == 2
    assert not {item["id"] for item in after.items} & {int(i) for i in answers}
