"""Executors: serial, local worker processes and Ray tasks give the same records; a worker killed
mid-run loses only its run (retried, or reported), Ctrl-C keeps what finished, and only the
driver writes the store."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import sslzoo
from sslzoo._cli.main import main
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry, reset_default_registry
from sslzoo._engine.learner import _ctrl_c_held
from sslzoo._planning.executor import SerialExecutor, usable_cores
from sslzoo._planning.worker_pool import ProcessExecutor
from sslzoo._results.store import load, resume_key
from sslzoo.errors import OptionError, PluginError, TrainingError, WorkerError, WorkerWarning
from tests import executor_plugins
from tests.test_engine import TestPlugin

os.environ[executor_plugins.DRIVER_PID] = str(os.getpid())

#: A small grid: 3 strategies (one of them querying the oracle, one pseudo-labeling) × 2 seeds.
GRID = {"strategies": ["supervised", "least_confidence", "pseudo_label"], "dataset": "moons", "labels": 10,
        "seeds": 2, "options": {"epochs": 5, "least_confidence.budget": 20, "least_confidence.query_size": 5,
                    "pseudo_label.t1": 1, "pseudo_label.t2": 4}}
CLI_GRID = ["-s", "supervised", "-s", "least_confidence", "--dataset", "moons", "--labels", "10", "--seeds", "2",
            "--epochs", "5", "--budget", "20", "--query-size", "5"]


def runs(records: list[dict]) -> list[dict]:
    """The records without their wall time, the one field that differs from one execution to another."""
    return [{key: value for key, value in record.items() if key != "wall_seconds"} for record in records]


def by_run(records: list[dict]) -> dict[tuple, dict]:
    keyed = {resume_key(record): record for record in runs(records)}
    assert len(keyed) == len(records), "a run's record is stored twice"
    return keyed


def with_test_plugins() -> Registry:
    return Registry(make_plugins(load="", extra=(executor_plugins, TestPlugin())))


def runs_once_though_killed_once(executor: sslzoo.Executor, tmp_path: Path) -> None:
    """A grid in which one run's first try kills its worker mid-run: every run is stored once."""
    marker = tmp_path / "died"
    records = sslzoo.run(["supervised", "dies_once"], "moons", labels=10, seeds=2, out=tmp_path / "out",
                         options={"epochs": 3, "dies_once.marker": str(marker)}, registry=with_test_plugins(),
                         executor=executor)
    assert marker.exists() and marker.read_text() != str(os.getpid())
    stored = load(tmp_path / "out").records
    assert sorted((r["strategy"], r["seed"]) for r in stored) == [
        ("dies_once", 0), ("dies_once", 1), ("supervised", 0), ("supervised", 1)]
    assert by_run(stored) == by_run(records)


@pytest.fixture(scope="module")
def serial_records() -> list[dict]:
    """The grid run serially here with each worker's torch threads on this machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cores() // 2))
    try:
        return sslzoo.run(**GRID)
    finally:
        torch.set_num_threads(threads)


def test_two_workers_give_the_serial_records_in_the_planned_order_each_with_its_share_of_the_cores(
        serial_records, tmp_path, monkeypatch):
    probe = tmp_path / "threads.txt"
    monkeypatch.setenv(executor_plugins.THREADS_FILE, str(probe))
    reset_default_registry(Registry(make_plugins(load="", extra=(executor_plugins,))))
    records = sslzoo.run(**GRID, out=tmp_path / "out", executor=ProcessExecutor(2))
    assert runs(records) == runs(serial_records)
    assert by_run(load(tmp_path / "out").records) == by_run(serial_records)
    started = [line.split() for line in probe.read_text().splitlines()]
    assert len(started) == 6 and len({pid for pid, _ in started}) == 2 and str(os.getpid()) not in dict(started)
    assert {int(threads) for _, threads in started} == {max(1, usable_cores() // 2)}
    assert multiprocessing.active_children() == []


def test_the_command_with_workers_stores_each_run_once_and_shows_the_grid(monkeypatch, tmp_path):
    monkeypatch.setattr("sslzoo._cli.main._on_terminal", lambda: True)
    serial = CliRunner().invoke(main, ["bench", *CLI_GRID, "--out", str(tmp_path / "serial"), "-q"])
    assert serial.exit_code == 0, serial.output
    result = CliRunner().invoke(main, ["bench", *CLI_GRID, "--workers", "2", "--out", str(tmp_path / "workers")])
    assert result.exit_code == 0, result.output
    assert by_run(load(tmp_path / "workers").records) == by_run(load(tmp_path / "serial").records)
    assert "runs" in result.stderr and "least_confidence seed 1 round" in result.stderr
    assert table(result.stdout) == table(serial.stdout)


def table(text: str) -> list[str]:
    """The rows of ``sslzoo bench``'s table without its last column, the wall time."""
    return [line.rsplit(None, 1)[0] for line in text.splitlines()]


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_only_that_try_which_runs_again_and_is_stored_once(tmp_path):
    with pytest.warns(WorkerWarning, match=r"dies_once seed \d: its worker was killed by SIGKILL; it runs again "
                                           r"\(try 2 of 2\)"):
        runs_once_though_killed_once(ProcessExecutor(2, retries=1), tmp_path)


@pytest.mark.slow
def test_a_run_whose_worker_dies_on_every_try_is_reported_and_resume_runs_only_it(tmp_path):
    marker = tmp_path / "died"
    grid = {"strategies": ["supervised", "dies_once"], "dataset": "moons", "labels": 10,
            "options": {"epochs": 3, "dies_once.marker": str(marker)}, "registry": with_test_plugins(),
            "out": tmp_path / "out"}
    lost = r"1 try each: dies_once seed 0 \(its worker was killed by SIGKILL\).*--resume"
    with pytest.raises(WorkerError, match=lost):
        sslzoo.run(**grid, executor=ProcessExecutor(2, retries=0))
    assert [r["strategy"] for r in load(tmp_path / "out").records] == ["supervised"]
    assert multiprocessing.active_children() == []
    resumed = sslzoo.run(**grid, resume=True)  # the marker is there now: the run trains, in this process
    assert [r["strategy"] for r in resumed] == ["supervised", "dies_once"]
    assert len(by_run(load(tmp_path / "out").records)) == 2


@pytest.mark.slow
def test_a_run_that_raises_in_a_worker_stops_the_bench_with_its_error_and_keeps_the_finished(tmp_path):
    seen: list[dict] = []
    with pytest.raises(TrainingError, match="'nan_at_step' is not finite at round 0, epoch 1, step 5") as raised:
        sslzoo.run(["supervised", "nan_at_step"], "moons", labels=200, seeds=1, out=tmp_path,
                   options={"epochs": 2, "batch_size": 16}, registry=with_test_plugins(),
                   executor=ProcessExecutor(2), on_record=seen.append)
    assert "Traceback" in str(raised.value.__cause__)  # the worker's traceback comes along
    assert runs(load(tmp_path, allow_empty=True).records) == runs(seen)
    assert [r["strategy"] for r in seen] in ([], ["supervised"])
    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_an_interrupted_bench_ends_its_workers_and_keeps_the_records_that_reached_it(tmp_path):
    seen: list[dict] = []

    def interrupt(record: dict) -> None:
        seen.append(record)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sslzoo.run(**GRID, out=tmp_path, executor=ProcessExecutor(2), on_record=interrupt)
    assert multiprocessing.active_children() == []
    assert runs(load(tmp_path).records) == runs(seen) and len(seen) == 1
    sslzoo.run(**GRID, out=tmp_path, resume=True)
    assert len(by_run(load(tmp_path).records)) == 6


def test_a_plugin_that_cannot_reach_a_worker_is_named_before_any_run():
    class Local:
        @sslzoo.hookimpl
        def register_strategies(self, register):
            register(executor_plugins.DiesOnce)

    with pytest.raises(PluginError, match="plugin Local cannot run in worker processes: it cannot be pickled"):
        sslzoo.run(["supervised"], "moons", labels=10, registry=Registry(make_plugins(load="", extra=(Local(),))),
                   executor=ProcessExecutor(2))


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "0"], "--workers must be an integer of at least 1, got 0"),
    (["--executor", "ray", "--workers", "2"], "--workers is for local worker processes"),
    (["--cpus-per-run", "2"], "--cpus-per-run needs --executor ray"),
    (["--ray-address", "auto"], "--ray-address needs --executor ray"),
    (["--retries", "2"], "--retries needs --workers N (N > 1) or --executor ray"),
    (["--workers", "2", "--retries", "-1"], "--retries must be an integer of at least 0, got -1"),
    (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run must be a number of at least 0.01, got 0.0"),
    (["--executor", "ray", "--gpus-per-run", "-1"], "--gpus-per-run must be a number of at least 0, got -1.0"),
    (["--executor", "slurm"], "'slurm' is not one of 'local', 'ray'"),
])
def test_executor_options_that_do_not_fit_are_one_line_errors(args, message):
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "10", *args])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_the_serial_executor_is_the_default_and_gives_the_same_records(serial_records):
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cores() // 2))
    try:
        assert runs(sslzoo.run(**GRID, executor=SerialExecutor())) == runs(serial_records)
    finally:
        torch.set_num_threads(threads)


def _ctrl_c_reaches_the_command() -> None:
    """Undo an inherited ignore of SIGINT (a shell starts background jobs that way; Python then never
    raises KeyboardInterrupt), so that the command meets Ctrl-C as it would in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_a_ctrl_c_while_a_learner_starts_is_delivered_once_the_start_is_done():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with _ctrl_c_held():
            signal.raise_signal(signal.SIGINT)  # mid-handshake with the fork server, as a Ctrl-C can land
            done.append("the start went on")
    assert done == ["the start went on"] and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_stops_the_command_and_its_workers_and_resume_finishes_the_grid(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sslzoo", "bench", "-s", "supervised", "-s", "pseudo_label", "--dataset",
               "moons", "--labels", "10", "--seeds", "4", "--epochs", "300", "--out", str(out), "-q"]
    bench = subprocess.Popen([*command, "--workers", "2"], start_new_session=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_reaches_the_command)
    records = out / "records.jsonl"
    deadline = time.monotonic() + 120
    while not (records.exists() and records.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(bench.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 1 and "Aborted" in stderr and "Traceback" not in stderr
    assert group_ends(bench.pid, within=10.0)  # no worker outlived the command
    kept = load(out).records
    assert 1 <= len(kept) < 8 and all(line.endswith("}") for line in records.read_text().splitlines())
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(by_run(load(out).records)) == 8
    assert by_run(kept).items() <= by_run(load(out).records).items()


@pytest.mark.slow
def test_sigterm_stops_the_command_as_ctrl_c_does_and_resume_finishes_the_grid(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "sslzoo", "bench", "-s", "supervised", "--dataset", "moons", "--labels", "10",
               "--seeds", "4", "--epochs", "150", "--out", str(out), "-q"]
    bench = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    records = out / "records.jsonl"
    deadline = time.monotonic() + 120
    while not (records.exists() and records.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    bench.terminate()  # SIGTERM to the command alone, as a job scheduler sends it
    _, stderr = bench.communicate(timeout=60)
    assert bench.returncode == 1 and "terminated (SIGTERM)" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    assert group_ends(bench.pid, within=10.0)  # its learner and fork server went with it
    kept = load(out).records
    assert 1 <= len(kept) < 4
    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert len(by_run(load(out).records)) == 4


@pytest.mark.slow
def test_workers_whose_driver_was_killed_end_quietly(tmp_path):
    out = tmp_path / "out"
    bench = subprocess.Popen([sys.executable, "-m", "sslzoo", "bench", "-s", "supervised", "--dataset", "moons",
                              "--labels", "10", "--seeds", "4", "--epochs", "150", "--out", str(out), "-q",
                              "--workers", "2"], start_new_session=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    records = out / "records.jsonl"
    deadline = time.monotonic() + 120
    while not (records.exists() and records.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    bench.kill()  # SIGKILL to the driver alone: its workers find their pipe closed
    bench.wait()
    assert group_ends(bench.pid, within=30.0)
    _, stderr = bench.communicate(timeout=10)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr


def group_ends(group: int, within: float) -> bool:
    """Whether every process of ``group`` is gone (and reaped) within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


# -- Ray -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance for this module's tests (started as the executor starts one)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'sslzoo[ray]')")
    from sslzoo._planning.ray_cluster import connected

    with connected(ray, None):
        yield ray


@pytest.mark.slow
def test_ray_tasks_give_the_serial_records(local_ray, serial_records, tmp_path):
    from sslzoo._planning.ray_cluster import RayExecutor

    records = sslzoo.run(**GRID, out=tmp_path, executor=RayExecutor(cpus_per_run=max(1, usable_cores() // 2)))
    assert runs(records) == runs(serial_records)
    assert by_run(load(tmp_path).records) == by_run(serial_records)


@pytest.mark.slow
def test_ray_retries_a_task_whose_worker_was_killed_and_stores_its_record_once(local_ray, tmp_path):
    from sslzoo._planning.ray_cluster import RayExecutor

    runs_once_though_killed_once(RayExecutor(retries=1), tmp_path)


@pytest.mark.slow
def test_ray_reports_a_run_whose_worker_dies_on_every_try(local_ray, tmp_path):
    from sslzoo._planning.ray_cluster import RayExecutor

    options = {"epochs": 3, "dies_once.marker": str(tmp_path / "died")}
    with pytest.raises(WorkerError, match=r"1 try each: dies_once seed 0 \(Ray: WorkerCrashedError\)"):
        sslzoo.run(["supervised", "dies_once"], "moons", labels=10, out=tmp_path / "out", options=options,
                   registry=with_test_plugins(), executor=RayExecutor(retries=0))
    assert [r["strategy"] for r in load(tmp_path / "out").records] == ["supervised"]


@pytest.mark.slow
def test_ray_stops_the_bench_with_the_error_a_run_raised(local_ray, tmp_path):
    from sslzoo._planning.ray_cluster import RayExecutor

    with pytest.raises(TrainingError, match="'nan_at_step' is not finite at round 0, epoch 1, step 5"):
        sslzoo.run(["nan_at_step"], "moons", labels=200, out=tmp_path, options={"epochs": 2, "batch_size": 16},
                   registry=with_test_plugins(), executor=RayExecutor())
    assert load(tmp_path, allow_empty=True).records == []


@pytest.mark.slow
def test_an_interrupted_ray_bench_cancels_its_tasks_and_keeps_the_records_that_reached_it(local_ray, tmp_path):
    from sslzoo._planning.ray_cluster import RayExecutor

    seen: list[dict] = []

    def interrupt(record: dict) -> None:
        seen.append(record)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sslzoo.run(**GRID, out=tmp_path, executor=RayExecutor(), on_record=interrupt)
    assert runs(load(tmp_path).records) == runs(seen) and len(seen) == 1


def test_a_ray_address_where_nothing_answers_is_a_one_line_error_at_once():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sslzoo[ray]')")
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "10",
                                       "--executor", "ray", "--ray-address", "127.0.0.1:1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--ray-address 127.0.0.1:1: no Ray cluster answers there" in result.output


def test_a_ray_client_address_where_nothing_answers_is_a_one_line_error_at_once():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sslzoo[ray]')")
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "10",
                                       "--executor", "ray", "--ray-address", "ray://127.0.0.1:1"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: --ray-address ray://127.0.0.1:1: no Ray cluster answers there")


def test_a_local_ray_instance_under_too_small_an_address_space_is_refused_before_ray_starts(monkeypatch):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sslzoo[ray]')")
    import resource

    ray = sys.modules["ray"]
    monkeypatch.setattr(resource, "getrlimit", lambda which: (4 * 2**30, resource.RLIM_INFINITY))
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process (this module's fixture
    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail("Ray started"))  # may hold an instance)
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "10",
                                       "--executor", "ray"])
    assert result.exit_code == 1 and result.output == (
        "Error: --executor ray: this process may map 4.0 GiB (ulimit -v), and a local Ray instance needs about "
        "6 GiB; raise the limit, or use --workers N\n")


def test_under_an_address_space_limit_the_local_object_store_is_an_eighth_of_it(monkeypatch):
    import resource

    from sslzoo._planning.ray_cluster import _object_store_bytes

    monkeypatch.setattr(resource, "getrlimit", lambda which: (16 * 2**30, resource.RLIM_INFINITY))
    assert _object_store_bytes() == 2 * 2**30
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert _object_store_bytes() is None


@pytest.mark.parametrize("address", ["not an address", "http://127.0.0.1:1"])
def test_a_malformed_ray_address_is_a_one_line_error(address):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sslzoo[ray]')")
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "10",
                                       "--executor", "ray", "--ray-address", address])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith(f"Error: --ray-address {address!r} is not a Ray address: use HOST:PORT, "
                                    f"ray://HOST:PORT or auto") and len(result.output.splitlines()) == 1


@pytest.mark.slow
def test_a_ray_node_that_dies_mid_grid_is_a_one_line_error_that_keeps_the_records_and_hints_resume(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'sslzoo[ray]')")
    out = tmp_path / "out"
    bench = subprocess.Popen([sys.executable, "-m", "sslzoo", "bench", "-s", "supervised", "-s", "self_training",
                              "--dataset", "moons", "--labels", "10", "--seeds", "4", "--epochs", "300", "--out",
                              str(out), "-q", "--executor", "ray"], start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = out / "records.jsonl"
    deadline = time.monotonic() + 120
    while not (records.exists() and records.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    raylet = next(pid for pid in _children(bench.pid) if "raylet/raylet" in _command_line(pid))
    os.kill(raylet, signal.SIGKILL)  # the node's agent, as an OOM killer would take it
    _, stderr = bench.communicate(timeout=60)
    message = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert bench.returncode == 1 and message, stderr
    assert message[0].startswith("Error: the Ray node this driver runs on went away (its raylet stopped); the ")
    assert "run the same command with --resume" in message[0] and "Traceback" not in stderr
    kept = load(out).records
    assert 1 <= len(kept) < 8 and f"the {len(kept)} runs that finished were kept" in message[0]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(bench.pid, signal.SIGKILL)  # whatever Ray left of the local instance


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                status = (Path("/proc") / entry / "status").read_text()
                if f"\nPPid:\t{pid}\n" in status:
                    found.append(int(entry))
    return found


def _command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


@pytest.mark.slow
def test_a_request_no_node_of_the_cluster_can_meet_is_refused_not_waited_for(local_ray):
    from sslzoo._planning.ray_cluster import RayExecutor

    gpus = local_ray.cluster_resources().get("GPU", 0.0)
    with pytest.raises(OptionError, match=f"--gpus-per-run {gpus + 1:g}: the Ray cluster has {gpus:g} GPUs in all"):
        sslzoo.run(**GRID, executor=RayExecutor(gpus_per_run=gpus + 1))


def test_without_ray_the_ray_executor_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    result = CliRunner().invoke(main, ["bench", "-s", "supervised", "--dataset", "moons", "--labels", "10",
                                       "--epochs", "1", "--executor", "ray"])
    assert result.exit_code == 1
    assert "--executor ray needs Ray, which is not installed: pip install 'sslzoo[ray]'" in result.output
