"""The learner's thread policy on a busy machine (``sslzoo/_engine/threads.py``), as the command a user
types, in one benchmark run.

    python -m pytest benchmarks/test_speed_threads.py -s

The workload is the 9-run two-moons grid ``sslzoo bench -s supervised -s pseudo_label -s entropy
--dataset moons --labels 6 --seeds 3 --budget 12 --query-size 2``, run while another process spins
on one core, three ways, alternated ``ROUNDS`` times (policy, one thread, torch's default, ...) so
that a change of the machine's load touches all three:

* ``policy``: no thread setting (the learner chooses: 1 thread for these tiny models);
* ``one_thread``: ``OMP_NUM_THREADS=1``;
* ``all_cores``: ``SSLZOO_THREADS`` = the machine's cores, torch's default before the policy.

The figures are the medians of the command's wall time and their ratios to ``one_thread``; the
policy must stay within 1.5x of it (asserted). Results: ``benchmarks/results/speed_threads.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import speedlib

ROUNDS = 3
GRID = ["-s", "supervised", "-s", "pseudo_label", "-s", "entropy", "--dataset", "moons", "--labels", "6",
        "--seeds", "3", "--budget", "12", "--query-size", "2"]
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
MODES: dict[str, dict[str, str]] = {"policy": {}, "one_thread": {"OMP_NUM_THREADS": "1"},
                                    "all_cores": {"SSLZOO_THREADS": str(CORES)}}
RESULTS: dict[str, Any] = {"rounds": ROUNDS, "grid": " ".join(GRID), "cores": CORES, "modes": {}}


@contextmanager
def one_core_busy() -> Iterator[None]:
    """Another process spinning on one core while the block runs."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        spinner.kill()
        spinner.wait()


def bench(environ: dict[str, str], out: Path) -> tuple[float, list[dict[str, Any]]]:
    """The wall time of the grid under ``environ`` (over a base without thread settings) and its records."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SSLZOO_THREADS", "MKL_NUM_THREADS")}
    env.update({"SSLZOO_LOAD_PLUGINS": "", **environ})
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sslzoo", "bench", *GRID, "-q", "--json-out", str(out)], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, json.loads(out.read_text())


@pytest.mark.skipif(CORES < 2, reason="a busy core leaves no other on a one-core machine")
def test_the_policy_keeps_a_busy_machine_near_its_one_thread_time(tmp_path):
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    accuracies: dict[str, list[float]] = {}
    with one_core_busy():
        for turn in range(ROUNDS):
            for mode in (list(MODES) if turn % 2 == 0 else list(reversed(MODES))):
                seconds, records = bench(MODES[mode], tmp_path / f"{mode}{turn}.json")
                times[mode].append(round(seconds, 2))
                accuracies[mode] = [r["test_accuracy"] for r in records]
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    RESULTS["modes"] = {mode: {"seconds": times[mode], "median": medians[mode],
                               "ratio_to_one_thread": round(medians[mode] / medians["one_thread"], 3)}
                        for mode in MODES}
    speedlib.save("speed_threads", RESULTS)
    print("\n", json.dumps(RESULTS, indent=1))
    assert accuracies["policy"] == accuracies["one_thread"]  # the same runs: one thread each
    assert medians["policy"] <= 1.5 * medians["one_thread"]
