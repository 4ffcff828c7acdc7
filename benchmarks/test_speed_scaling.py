"""Selection at pool sizes of 10^4 to 10^6: one query round of every built-in active learner and one
round of the graph methods, as the command a user types, in one benchmark run.

    python -m pytest benchmarks/test_speed_scaling.py -s                                  # 10^4, 10^5, 10^6
    SSLZOO_SCALING_SIZES=10000,100000 python -m pytest benchmarks/test_speed_scaling.py -s  # the quick run

``SSLZOO_SCALING_STRATEGIES=kcenter,badge`` runs those (and ``random``, the reference) only;
``SSLZOO_SCALING_OUT=NAME`` writes ``benchmarks/results/NAME.json`` instead of ``speed_scaling.json``.

The data: a ``.npz`` of 32-D Gaussian blobs in 10 classes (``N`` training rows, 2000 test rows). Each
strategy runs as ``sslzoo bench -s NAME --dataset blobs.npz --labels 100 --epochs 3 --budget 200
--query-size 100 --in-process`` (one query round; BatchBALD a small one, ``--budget 104 --query-size 4
-o passes=20``: its greedy step costs N · C · K · M multiply-adds per pick, M = min(C^i, 10^5) the
batch's label configurations: 10^14 per pick at 10^6 pool items from the 6th pick of 10 with its default
100 passes; with 4 picks and 20 passes, at most 2·10^11); the graph methods one round of acceptance, no
budget) in a child process of its own, which reports

* ``wall_s``: the whole command's wall time (data, two trainings, one selection, evaluation);
* ``peak_rss_mb``: the child's peak resident memory (``ru_maxrss``), everything being in that process;
* ``select_s``: the time inside the strategy's ``select`` (its class's method timed in the child,
  which is why the learner runs ``--in-process``): the round's selection itself.

Per strategy: ``exponent_select`` and ``exponent_wall``, the fitted growth exponents
``log(t(N2) / t(N1)) / log(N2 / N1)`` between the two largest sizes (10^5 and 10^6 in the full run);
``select_over_pass``: the selection time as a ratio of one pass over its embedding (``N × 256`` float32,
the ``mlp``'s embedding, summed once: the memory-bandwidth floor, measured in this run) and
``wall_over_random``: the whole command against ``random``'s at the same size.

At the sizes above ``sslzoo._ops.neighbours.EXACT_UP_TO`` the graph methods build their graph from
approximate neighbours; ``graph_agreement`` measures, on the largest size up to 10^5, the recall of the
exact ``k = 7`` neighbours and the agreement of the labels propagated over both graphs (100 labeled rows).

Asserted: every strategy finishes a round at every size; at 10^6, ``kcenter`` and ``badge`` within 3x
``random``'s whole command; every selection exponent between 10^5 and 10^6 at most 1.2 (asserted only
when the largest size is at least 10^6, and for the selections that take a second or more there:
``random``'s is a shuffle of a fraction of a second, whose exponent is noise). Results:
``benchmarks/results/speed_scaling.json``; the machine's other load is not controlled, so every figure
to compare is a ratio within this run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import speedlib
import torch

from sslzoo._ops import graph
from sslzoo._ops.neighbours import EXACT_UP_TO, approximate_knn

SIZES = tuple(int(s) for s in os.environ.get("SSLZOO_SCALING_SIZES", "10000,100000,1000000").split(","))
DIMS, CLASSES, TEST = 32, 10, 2000
EMBEDDING = 256  # the mlp's embedding (784-512-256-10 on 32 inputs: 32-512-256-10)
COMMON = ["--labels", "100", "--epochs", "3"]
AL = ["--budget", "200", "--query-size", "100"]
STRATEGIES: dict[str, list[str]] = {
    "random": AL, "least_confidence": AL, "margin": AL, "entropy": AL, "bald": AL,
    "batchbald": ["--budget", "104", "--query-size", "4", "-o", "passes=20"],
    "kcenter": AL, "badge": AL, "typiclust": AL,
    "label_propagation": [], "label_spreading": [],
}
ONLY = [name for name in os.environ.get("SSLZOO_SCALING_STRATEGIES", "").split(",") if name]
if ONLY:
    STRATEGIES = {name: STRATEGIES[name] for name in ["random", *ONLY] if name in STRATEGIES}
OUT = os.environ.get("SSLZOO_SCALING_OUT", "speed_scaling")
TIMEOUT = 1800

#: the child: time the strategy's select, run the command in this process, report
CHILD = r"""
import json, resource, sys, time
from sslzoo._engine.catalog import create_strategy
from sslzoo._cli.main import main

name, report = sys.argv[1], sys.argv[2]
cls = type(create_strategy(name))
original, spent = cls.select, []

def select(self, ctx, pool):
    started = time.perf_counter()
    try:
        return original(self, ctx, pool)
    finally:
        spent.append(time.perf_counter() - started)

cls.select = select
sys.argv = ["sslzoo", "bench", *sys.argv[3:]]
try:
    main()
except SystemExit as stop:
    if stop.code:
        raise
with open(report, "w") as out:
    json.dump({"select_s": spent, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, out)
"""


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    centers = 3.0 * g.standard_normal((CLASSES, DIMS), dtype=np.float32)
    y = g.integers(0, CLASSES, n)
    return (centers[y] + g.standard_normal((n, DIMS), dtype=np.float32)).astype(np.float32), y.astype(np.int64)


def dataset(n: int, folder: Path) -> Path:
    path = folder / f"blobs{n}.npz"
    if not path.exists():
        x, y = blobs(n + TEST, seed=0)
        np.savez(path, x=x[:n], y=y[:n], x_test=x[n:], y_test=y[n:])
    return path


def one_pass(n: int) -> float:
    """Seconds to read an ``n × EMBEDDING`` float32 tensor once (best of 3): the memory-bandwidth floor."""
    x = torch.ones(n, EMBEDDING)
    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        float(x.sum())
        best = min(best, time.perf_counter() - started)
    return best


def run(name: str, data: Path, folder: Path) -> dict[str, Any]:
    report = folder / f"{name}-{data.stem}.json"
    env = {**os.environ, "SSLZOO_LOAD_PLUGINS": "", "OMP_NUM_THREADS": str(speedlib.THREADS)}
    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, name, str(report), "-s", name, "--dataset", str(data),
                            *COMMON, *STRATEGIES[name], "--in-process", "-q", "--json-out",
                            str(folder / f"{name}-{data.stem}-records.json")],
                           env=env, capture_output=True, text=True, timeout=TIMEOUT)
    wall = time.perf_counter() - started
    assert child.returncode == 0, f"{name} on {data.name}: {child.stderr[-2000:]}"
    measured = json.loads(report.read_text())
    records = json.loads((folder / f"{name}-{data.stem}-records.json").read_text())
    return {"wall_s": round(wall, 2), "select_s": round(sum(measured["select_s"]), 3),
            "selections": len(measured["select_s"]), "peak_rss_mb": round(measured["peak_rss_mb"]),
            "test_accuracy": records[0]["test_accuracy"]}


def exponent(small: float, large: float, ratio: float) -> float | None:
    return round(math.log(large / small) / math.log(ratio), 3) if small > 0 and large > 0 else None


def graph_agreement(n: int) -> dict[str, Any]:
    """The approximate graph against the exact one on ``n`` rows of the blobs: neighbour recall, times,
    and the labels propagated from 100 labeled rows over each."""
    x, y = (torch.from_numpy(a) for a in blobs(n + TEST, seed=0))
    x, y = x[:n], y[:n]
    started = time.perf_counter()
    _, exact = graph.knn(x, 7)
    exact_s = time.perf_counter() - started
    started = time.perf_counter()
    _, approximate = approximate_knn(x, 7, generator=torch.Generator().manual_seed(0))
    approximate_s = time.perf_counter() - started
    recall = float((approximate.unsqueeze(2) == exact.unsqueeze(1)).any(2).float().mean())
    seeds = torch.arange(0, n, n // 100)[:100]
    out: dict[str, Any] = {"rows": n, "k": 7, "recall": round(recall, 4), "exact_knn_s": round(exact_s, 2),
                           "approximate_knn_s": round(approximate_s, 2)}
    graphs = {how: graph.knn_graph(x, 7, neighbours=how, generator=torch.Generator().manual_seed(0))
              for how in ("exact", "approximate")}
    for method in ("label_propagation", "label_spreading"):
        propagate = getattr(graph, method)
        labels = {how: propagate(g, seeds, y[seeds], CLASSES).labels()[1] for how, g in graphs.items()}
        out[f"{method}_agreement"] = round(float((labels["exact"] == labels["approximate"]).float().mean()), 4)
        out[f"{method}_accuracy_exact"] = round(float((labels["exact"] == y).float().mean()), 4)
        out[f"{method}_accuracy_approximate"] = round(float((labels["approximate"] == y).float().mean()), 4)
    return out


@pytest.mark.slow
def test_one_round_of_selection_grows_about_linearly_in_the_pool(tmp_path):
    speedlib.configure_threads()
    results: dict[str, Any] = {
        "note": "the machine's other load was not controlled: compare ratios within this run",
        "sizes": list(SIZES), "command": "sslzoo bench -s NAME --dataset blobs<N>.npz " + " ".join(COMMON)
        + " --budget 200 --query-size 100 --in-process (batchbald: --budget 104 --query-size 4 -o passes=20; graph "
        "methods: no budget)", "threads": speedlib.THREADS, "exact_up_to": EXACT_UP_TO,
        "one_pass_s": {}, "runs": {name: {} for name in STRATEGIES}}
    for n in SIZES:
        data = dataset(n, tmp_path)
        results["one_pass_s"][str(n)] = round(one_pass(n), 5)
        for name in STRATEGIES:
            result = run(name, data, tmp_path)
            result["select_over_pass"] = round(result["select_s"] / results["one_pass_s"][str(n)], 1)
            results["runs"][name][str(n)] = result
            print(f"{n:>8} {name:<18} {result}", flush=True)
        for name in STRATEGIES:
            this = results["runs"][name][str(n)]
            this["wall_over_random"] = round(this["wall_s"] / results["runs"]["random"][str(n)]["wall_s"], 2)
        speedlib.save(OUT, results)
    small, large = SIZES[-2], SIZES[-1]
    results["exponents_between"] = [small, large]
    for by_size in results["runs"].values():
        a, b = by_size[str(small)], by_size[str(large)]
        by_size["exponent_select"] = exponent(a["select_s"], b["select_s"], large / small)
        by_size["exponent_wall"] = exponent(a["wall_s"], b["wall_s"], large / small)
    checked = max(n for n in SIZES if n <= 100_000)
    if checked > EXACT_UP_TO and ("label_propagation" in STRATEGIES or "label_spreading" in STRATEGIES):
        results["graph_agreement"] = graph_agreement(checked)
    path = speedlib.save(OUT, results)
    print(json.dumps({name: {k: v for k, v in r.items() if k.startswith("exponent")}
                      for name, r in results["runs"].items()}), f"-> {path}")
    assert all(r[str(n)]["selections"] >= 1 for r in results["runs"].values() for n in SIZES)
    if large >= 1_000_000:
        for name in ("kcenter", "badge"):
            assert results["runs"][name][str(large)]["wall_over_random"] <= 3.0, name
        for name, by_size in results["runs"].items():
            if by_size[str(large)]["select_s"] >= 1.0:  # below a second, fixed costs and noise rule the ratio
                assert by_size["exponent_select"] is not None and by_size["exponent_select"] <= 1.2, name


#: the graph alone at one size, in a child of its own (its peak memory is the graph's)
GRAPH_CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from sslzoo._ops import graph
n, seed, report = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
g = np.random.default_rng(seed)
centers = 3.0 * g.standard_normal((10, 32), dtype=np.float32)
y = g.integers(0, 10, n)
x = torch.from_numpy((centers[y] + g.standard_normal((n, 32), dtype=np.float32)).astype(np.float32))
y = torch.from_numpy(y)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
out = {"rows": n, "inputs_mb": round(before)}
started = time.perf_counter()
built = graph.knn_graph(x, 7, neighbours="approximate", generator=torch.Generator().manual_seed(0))
out["graph_s"] = round(time.perf_counter() - started, 2)
out["edges"] = built.edges
seeds = torch.arange(0, n, n // 100)[:100]
for method in ("label_propagation", "label_spreading"):
    started = time.perf_counter()
    result = getattr(graph, method)(built, seeds, y[seeds], 10)
    out[method + "_s"] = round(time.perf_counter() - started, 2)
    out[method + "_iterations"] = result.iterations
    out[method + "_accuracy"] = round(float((result.labels()[1] == y).float().mean()), 4)
out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
with open(report, "w") as f:
    json.dump(out, f)
"""

GRAPH_SIZES = tuple(int(s) for s in os.environ.get("SSLZOO_SCALING_GRAPH_SIZES", "100000,1000000").split(","))


@pytest.mark.slow
def test_the_approximate_graph_grows_about_linearly(tmp_path):
    """The approximate kNN graph and both propagations alone at ``GRAPH_SIZES`` (the blobs; 100 labeled
    rows), each size in a child process: time, peak memory, and their exponents between the sizes."""
    results: dict[str, Any] = {"note": "the machine's other load was not controlled: compare ratios within this run",
                               "threads": speedlib.THREADS, "sizes": {}}
    env = {**os.environ, "OMP_NUM_THREADS": str(speedlib.THREADS)}
    for n in GRAPH_SIZES:
        report = tmp_path / f"graph{n}.json"
        subprocess.run([sys.executable, "-c", GRAPH_CHILD, str(n), "0", str(report)], env=env, check=True,
                       timeout=TIMEOUT)
        results["sizes"][str(n)] = json.loads(report.read_text())
        print(n, results["sizes"][str(n)], flush=True)
    small, large = (results["sizes"][str(n)] for n in GRAPH_SIZES[-2:])
    ratio = GRAPH_SIZES[-1] / GRAPH_SIZES[-2]
    results["exponents"] = {key: exponent(small[key], large[key], ratio)
                            for key in ("graph_s", "label_propagation_s", "label_spreading_s", "peak_rss_mb")}
    speedlib.save(f"{OUT}_graph", results)
    assert results["exponents"]["graph_s"] is not None and results["exponents"]["graph_s"] <= 1.2
