"""The judge's cost: each run's learner in a process of its own against ``--in-process``, as the
commands a user types, in one benchmark run.

    python -m pytest benchmarks/test_speed_judge.py -s

* ``default``: the default ``sslzoo bench`` (four strategies on the bundled MNIST, a few minutes).
* ``bald``: two BALD rounds over 2000 candidates with 20 MC-dropout passes (``hot_paths.py bald``: the
  round whose scoring is the heaviest traffic of predictions and oracle answers).
* ``tiny``: 20 one-epoch supervised runs on two-moons: the fixed cost per run (a learner forked,
  the data handed over, the registry rebuilt), where the runs themselves cost least.

Each workload alternates the two modes, ``ROUNDS`` times each (judged, in-process, in-process,
judged, ...), so that a change of the machine's load touches both; the figures are the medians of
the command's wall time and their ratio (judged / in-process). One torch thread
(``OMP_NUM_THREADS=1``), built-in plugins only. The records of the two modes must be equal but for
their wall time and the in-process mark (asserted). Results: ``benchmarks/results/speed_judge.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import speedlib

ROUNDS = 2
WORKLOADS: dict[str, list[str]] = {
    "default": [],
    "bald": ["-s", "bald", "--labels", "100", "-d", "n_train=12000", "-d", "n_test=1000", "-o", "epochs=1",
             "-o", "budget=120", "-o", "query_size=10", "-o", "pool_subset=2000", "-o", "passes=20"],
    "tiny": ["-s", "supervised", "--dataset", "moons", "--labels", "6", "--epochs", "1", "--seeds", "20"],
}
RESULTS: dict[str, Any] = {"rounds": ROUNDS, "workloads": {k: " ".join(v) for k, v in WORKLOADS.items()},
                           "modes": {}}


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    speedlib.save("speed_judge", RESULTS)
    print("\n", json.dumps(RESULTS, indent=1))


def bench(args: list[str], out: Path, in_process: bool) -> tuple[float, list[dict[str, Any]]]:
    """The wall time of ``sslzoo bench ARGS`` (judged, or ``--in-process``) and its records."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLZOO_LOAD_PLUGINS": ""}
    command = [sys.executable, "-m", "sslzoo", "bench", *args, "-q", "--json-out", str(out)]
    started = time.perf_counter()
    subprocess.run(command + (["--in-process"] if in_process else []), env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, json.loads(out.read_text())


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "judge")} for r in records]


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_the_judge_costs_little_beside_the_same_runs_in_one_process(workload, tmp_path):
    times: dict[str, list[float]] = {"judged": [], "in_process": []}
    records: dict[str, list[dict[str, Any]]] = {}
    for turn in range(2 * ROUNDS):
        in_process = turn % 4 in (1, 2)  # judged, in-process, in-process, judged, ...
        mode = "in_process" if in_process else "judged"
        seconds, records[mode] = bench(WORKLOADS[workload], tmp_path / f"{turn}.json", in_process)
        times[mode].append(round(seconds, 2))
    assert comparable(records["judged"]) == comparable(records["in_process"])
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    RESULTS["modes"][workload] = {"seconds": times, "medians": medians,
                                  "ratio": round(medians["judged"] / medians["in_process"], 3)}
