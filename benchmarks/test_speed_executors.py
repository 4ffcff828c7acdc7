"""Executors: one grid of runs serially, with ``--workers 2`` and with ``--executor ray`` on a local Ray
instance, each as the ``sslzoo bench`` command a user types, in one benchmark run.

    python -m pytest benchmarks/test_speed_executors.py \
        --benchmark-json benchmarks/results/speed_executors_benchmark.json

* The grid: ``--preset moons-6 --scaled`` with supervised, pseudo-label and self-training × 3 seeds
  (9 runs of about a second each): the command's wall time, the runs' own (the sum of the records'
  ``wall_seconds``), the load average around it, and the speedup over serial.
* The fixed cost: the wall time of a command of 2 tiny runs (supervised on moons, 1 epoch; one run
  per slot, so that every worker starts).
* The cost per run: 100 such tiny runs through the executor in this process; once every slot has
  finished a run, the slot-seconds from one record's arrival to the next,
  ``slots × (last − first arrival) / (arrivals − 1)`` (slots: 1 serial, 2 workers, 2 Ray CPUs),
  beside the runs' own wall time: the difference is what the executor adds per run.

Two rounds, each running the three executors in turn, so that a change of the machine's load
touches all three; each executor's figures are those of its faster grid round.

Every command is a fresh process with 1 torch thread per run (``OMP_NUM_THREADS=1`` for the serial
process; a worker's share of this machine's 2 cores is 1; the Ray runs ask for 1 CPU each, from a
local Ray instance with the machine's CPUs). The three executors' grid records must be identical
but for their wall time (asserted). Results: ``benchmarks/results/speed_executors.json``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import speedlib

import sslzoo
from sslzoo._results.store import load, resume_key

GRID = ["--preset", "moons-6", "--scaled", "-s", "supervised", "-s", "pseudo_label", "-s", "self_training"]
PROBE = ["-s", "supervised", "--dataset", "moons", "--labels", "6", "--epochs", "1", "--seeds", "2"]
TINY_RUNS = 100
ROUNDS = 2
EXECUTORS = {"serial": [], "workers": ["--workers", "2"], "ray": ["--executor", "ray"]}
SLOTS = {"serial": 1, "workers": 2, "ray": 2}
THREADS = speedlib.configure_threads()
RESULTS: dict[str, Any] = {"grid": " ".join(GRID), "probe": " ".join(PROBE), "tiny_runs": TINY_RUNS,
                           "rounds": ROUNDS, "slots": SLOTS, "executors": {}}


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    speedlib.save("speed_executors", RESULTS)
    print("\n", RESULTS)


def bench(args: list[str], out: Path) -> dict[str, Any]:
    """Run ``sslzoo bench ARGS --out OUT -q`` in a fresh process: its wall time, its records, the load."""
    before = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sslzoo", "bench", *args, "--out", str(out), "-q"], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": str(speedlib.THREADS)}, capture_output=True)
    wall = time.perf_counter() - started
    records = load(out).records
    return {"wall_seconds": round(wall, 2), "records": records,
            "run_seconds": round(sum(r["wall_seconds"] for r in records), 2),
            "load_average": [round(before, 2), round(os.getloadavg()[0], 2)]}


def executor_of(name: str) -> sslzoo.Executor:
    return {"serial": sslzoo.SerialExecutor, "workers": lambda: sslzoo.ProcessExecutor(2),
            "ray": sslzoo.RayExecutor}[name]()


def per_run(name: str) -> dict[str, float]:
    """TINY_RUNS runs of 1 epoch through the executor in this process, once its workers run: the
    slot-seconds between one record's arrival and the next, and a run's own wall time."""
    arrived: list[float] = []
    records = sslzoo.run(["supervised"], "moons", labels=6, seeds=TINY_RUNS, options={"epochs": 1},
                         executor=executor_of(name), on_record=lambda record: arrived.append(time.perf_counter()))
    steady = arrived[SLOTS[name]:]  # from the first record after every slot has finished one run
    return {"slot_seconds_per_tiny_run": round(SLOTS[name] * (steady[-1] - steady[0]) / (len(steady) - 1), 4),
            "tiny_run_own_seconds": round(sum(r["wall_seconds"] for r in records[SLOTS[name]:]) / len(steady), 4)}


def measure(name: str, tmp: Path) -> dict[str, Any]:
    """One round of one executor: the grid command, the two-run command and the runs in this process."""
    flags = EXECUTORS[name]
    probe = bench([*PROBE, *flags], tmp / "probe")
    grid = bench([*GRID, *flags], tmp / "grid")
    return {"grid_wall_seconds": grid["wall_seconds"], "grid_run_seconds": grid["run_seconds"],
            "grid_load_average": grid["load_average"], "two_run_command_seconds": probe["wall_seconds"],
            **per_run(name),
            "records": {repr(resume_key(r)): {k: v for k, v in r.items() if k != "wall_seconds"}
                        for r in grid["records"]}}


def test_executors(benchmark, tmp_path: Path) -> None:
    """ROUNDS rounds, each running every executor in turn (so that load changes touch all of them);
    the figures of each executor's fastest grid round are kept, with every round's grid wall time."""
    executors = [name for name in EXECUTORS if name != "ray" or importlib.util.find_spec("ray") is not None]

    def all_rounds() -> dict[str, list[dict[str, Any]]]:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in executors}
        for i in range(ROUNDS):
            for name in executors:
                rounds[name].append(measure(name, tmp_path / f"{name}-{i}"))
        return rounds

    rounds = benchmark.pedantic(all_rounds, rounds=1, iterations=1)
    serial_wall = min(r["grid_wall_seconds"] for r in rounds["serial"])
    for name, results in rounds.items():
        best = min(results, key=lambda r: r["grid_wall_seconds"])
        assert all(r["records"] == rounds["serial"][0]["records"] for r in results), name
        RESULTS["executors"][name] = {**{k: v for k, v in best.items() if k != "records"},
                                      "grid_wall_seconds_each_round": [r["grid_wall_seconds"] for r in results],
                                      "grid_speedup_over_serial": round(serial_wall / best["grid_wall_seconds"], 2)}
