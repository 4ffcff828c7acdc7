"""``--track mlflow`` and ``--track tensorboard``: a grid's records in the trackers, read back with
the trackers' own readers (a real MLflow tracking server on 127.0.0.1, TensorBoard's event reader),
a tracker that cannot start is one line before any run, and one that fails mid-grid loses no record."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._planning.bench import run_plan
from sslzoo._planning.executor import SerialExecutor
from sslzoo._planning.plan import Plan
from sslzoo._tracking import Tracking
from sslzoo._tracking.tensorboard_events import TensorBoardTracker
from sslzoo.errors import OptionError, TrackingError, TrackingWarning
from tests.tiny_records import moons_records

GRID = ["bench", "-s", "supervised", "-s", "pseudo_label", "--dataset", "moons", "--labels", "10", "--seeds", "2",
        "-o", "epochs=4", "-o", "pseudo_label.t1=1", "-o", "pseudo_label.t2=3",
        "-o", "pseudo_label.unlabeled_batch_size=64", "--device", "cpu", "--json", "-q"]
"""A 2-strategy × 2-seed moons grid, a few epochs each, pseudo-labels from the second epoch on."""
SERVER_START = 180.0
"""Seconds the MLflow server may take to answer (its first start creates its database)."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def mlflow_server(where: Path) -> Iterator[str]:
    """A real MLflow tracking server on a free local port, its store and artifacts under ``where``."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(where / "server.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{where / 'mlflow.db'}", "--artifacts-destination",
             str(where / "artifacts")], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START
        while not _answers(url):
            assert process.poll() is None, (where / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"no answer in {SERVER_START:.0f} s"
            time.sleep(0.25)
        yield url
    finally:  # the server and the worker it starts: asked to stop, then what is left killed
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _bench(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, [*GRID, *args], env=env)


def _steps(history) -> list[tuple[int, float]]:
    return sorted((metric.step, metric.value) for metric in history)


@pytest.mark.slow
def test_a_grid_lands_in_mlflow_as_one_parent_run_with_a_child_run_per_record(tmp_path, one_thread):
    mlflow = pytest.importorskip("mlflow")
    with mlflow_server(tmp_path) as url:
        result = _bench("--track", "mlflow", env={"MLFLOW_TRACKING_URI": url})
        assert result.exit_code == 0, result.output
        records = json.loads(result.stdout)
        assert len(records) == 4
        client = mlflow.MlflowClient(url)
        experiment = client.get_experiment_by_name("sslzoo")
        runs = client.search_runs([experiment.experiment_id])
        parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
        assert len(parents) == 1 and parents[0].info.status == "FINISHED"
        parent = parents[0]
        assert json.loads(parent.data.params["strategies"]) == ["supervised", "pseudo_label"]
        children = {run.info.run_name: run for run in runs if run.data.tags.get("mlflow.parentRunId")
                    == parent.info.run_id}
        assert len(children) == 4
        for record in records:
            child = children[f"{record['strategy']} 10 labels seed {record['seed']}"]
            run_id = child.info.run_id
            assert child.data.params["strategy"] == record["strategy"]
            assert child.data.params["seed"] == str(record["seed"])
            assert child.data.params["dataset"] == "moons"
            assert child.data.params["option.epochs"] == "4"
            assert child.data.tags["machine.cpu"] == record["machine"]["cpu"]
            curve = record["curve"]
            assert [value for _, value in _steps(client.get_metric_history(run_id, "test_accuracy"))] \
                == [entry["test_accuracy"] for entry in curve]
            assert child.data.metrics["test_accuracy"] == record["test_accuracy"]
            assert _steps(client.get_metric_history(run_id, "test_accuracy_by_labels")) \
                == [(entry["labels"], entry["test_accuracy"]) for entry in curve if entry["epoch"] == entry["epochs"]]
            pseudo = [entry["pseudo_accuracy"] for entry in curve if entry["pseudo_accuracy"] is not None]
            assert [value for _, value in _steps(client.get_metric_history(run_id, "pseudo_accuracy"))] == pseudo
            assert bool(pseudo) == (record["strategy"] == "pseudo_label")
            assert child.data.metrics["wall_seconds"] == record["wall_seconds"]
            logged = client.download_artifacts(run_id, "record.json", str(tmp_path))
            assert json.loads(Path(logged).read_text()) == record
        grid = client.download_artifacts(parent.info.run_id, "records.jsonl", str(tmp_path))
        assert sorted(json.loads(line)["seed"] for line in Path(grid).read_text().splitlines()) == [0, 0, 1, 1]
        report = [artifact.path for artifact in client.list_artifacts(parent.info.run_id, "report")]
        assert "report/report.md" in report and any(path.endswith(".png") for path in report)


@pytest.mark.slow
def test_a_tracking_server_that_does_not_answer_is_one_line_before_any_run(tmp_path):
    pytest.importorskip("mlflow")
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    result = _bench("--track", "mlflow", "--out", str(tmp_path / "out"), env={"MLFLOW_TRACKING_URI": url})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: --track mlflow: the MLflow tracking server at {url} does not answer ([Errno 111] Connection "
        f"refused); start it, or point MLFLOW_TRACKING_URI at one that runs"]
    assert not (tmp_path / "out" / "records.jsonl").exists() or not (tmp_path / "out" / "records.jsonl").read_text()


@pytest.mark.parametrize("tracker, module", [("mlflow", "mlflow"), ("tensorboard", "torch.utils.tensorboard")])
def test_a_tracker_whose_extra_is_missing_is_one_line_before_any_run(tmp_path, monkeypatch, tracker, module):
    monkeypatch.setitem(sys.modules, module, None)  # its import fails, as without the extra
    result = _bench("--track", tracker, "--out", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: --track {tracker} needs {'MLflow' if tracker == 'mlflow' else 'TensorBoard'}, which is not "
        f"installed: pip install 'sslzoo[{tracker}]'"]
    assert not (tmp_path / "records.jsonl").exists() or not (tmp_path / "records.jsonl").read_text()


def test_tensorboard_dir_without_track_tensorboard_is_refused():
    result = _bench("--tensorboard-dir", "runs")
    assert result.exit_code == 2 and "--tensorboard-dir needs --track tensorboard" in result.output


def test_an_unknown_tracker_is_an_option_error_naming_the_trackers():
    with pytest.raises(OptionError, match="'wandb' is not a tracker: use mlflow or tensorboard"):
        sslzoo.run("supervised", "moons", labels=10, tracking="wandb")


class _Failing:
    """A tracker whose server goes away after the first record."""

    name = "mlflow"

    def __init__(self) -> None:
        self.logged: list[dict] = []
        self.closed = False

    def open(self, grid):
        self.grid = grid

    def log(self, record):
        if self.logged:
            raise ConnectionError("API request to endpoint /api/2.0/mlflow/runs/create failed\nmore detail")
        self.logged.append(record)

    def close(self, finished):
        self.closed = True


def test_a_tracker_failing_mid_grid_is_one_warning_and_every_record_is_kept(tmp_path, one_thread):
    failing = _Failing()
    plan = Plan.of("supervised", "moons", labels=10, seeds=2, options={"epochs": 1}, out=tmp_path, device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = run_plan(plan, tracking=Tracking([failing]), executor=SerialExecutor(in_process=True))[0]
    assert [r["seed"] for r in records] == [0, 1]
    stored = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert stored == records
    assert failing.grid["runs"] == 2 and failing.grid["seeds"] == [0, 1]
    assert [r["seed"] for r in failing.logged] == [0]
    assert not failing.closed  # a failed tracker is not asked again
    tracking = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert tracking == ["--track mlflow failed (ConnectionError: API request to endpoint /api/2.0/mlflow/runs/create "
                        "failed); it logs no more runs of this grid, and every record is kept"]


def test_a_tracker_that_cannot_open_stops_the_grid_before_any_run(tmp_path):
    class Refusing(_Failing):
        def open(self, grid):
            raise TrackingError("--track mlflow: no")

    started = []
    plan = Plan.of("supervised", "moons", labels=10, options={"epochs": 1}, device="cpu")
    with pytest.raises(TrackingError):
        run_plan(plan, tracking=Tracking([Refusing()]), progress=lambda spec: started.append(spec))
    assert started == []


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_event_files_hold_each_records_curves_read_back_by_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    records = moons_records("random", "pseudo_label")  # several rounds; pseudo-labels
    tracker = TensorBoardTracker(tmp_path)
    tracker.open({"dataset": "moons", "runs": len(records)})
    for record in records:
        tracker.log(record)
    tracker.close(True)
    [grid] = list(tmp_path.iterdir())
    assert grid.name.endswith("-moons")
    for record in records:
        folder = grid / f"{record['strategy']}_10labels_seed{record['seed']}"
        scalars = _scalars(folder)
        curve = record["curve"]
        accuracy = [value for _, value in scalars["test_accuracy/by_epoch"]]
        assert accuracy == pytest.approx([entry["test_accuracy"] for entry in curve], abs=1e-7)  # stored as float32
        steps = [step for step, _ in scalars["test_accuracy/by_epoch"]]
        assert steps == sorted(steps) and steps[-1] == sum(
            entry["epochs"] for entry in curve if entry["epoch"] == entry["epochs"])
        assert scalars["test_accuracy/by_labels"] == [
            (entry["labels"], pytest.approx(entry["test_accuracy"], abs=1e-7)) for entry in curve
            if entry["epoch"] == entry["epochs"]]
        pseudo = [entry["pseudo_accuracy"] for entry in curve if entry["pseudo_accuracy"] is not None]
        assert [value for _, value in scalars.get("pseudo_accuracy/by_epoch", [])] == pytest.approx(pseudo, abs=1e-7)
        assert bool(pseudo) == (record["strategy"] == "pseudo_label")
        assert json.loads((folder / "record.json").read_text()) == record


@pytest.mark.slow
def test_bench_track_tensorboard_writes_a_folder_per_run(tmp_path, one_thread):
    pytest.importorskip("tensorboard")
    result = _bench("--track", "tensorboard", "--tensorboard-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    [grid] = list(tmp_path.iterdir())
    assert sorted(path.name for path in grid.iterdir()) == [
        "pseudo_label_10labels_seed0", "pseudo_label_10labels_seed1", "supervised_10labels_seed0",
        "supervised_10labels_seed1"]
    for record in records:
        scalars = _scalars(grid / f"{record['strategy']}_10labels_seed{record['seed']}")
        assert scalars["test_accuracy/by_labels"] == [(10, pytest.approx(record["test_accuracy"], abs=1e-7))]
