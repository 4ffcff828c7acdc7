"""Run time of every strategy at CI size, against the supervised baseline of the same run.

    python -m pytest benchmarks/test_speed_strategies.py                   # print the timings
    python -m pytest benchmarks/test_speed_strategies.py -k moons          # the two-moons cases only (~1 min)
    python -m pytest benchmarks/test_speed_strategies.py --benchmark-json=benchmarks.json

Each case is one ``sslzoo.run`` (one seed on the CPU), timed by pytest-benchmark: two-moons with 10
initial labels for every strategy, MNIST with 100 initial labels and a few epochs for some. Its
``extra_info`` holds ``over_supervised``, the run time over that of ``supervised`` on the same
dataset in the same session (the ratio to quote on a loaded machine), and what the run achieved
(final test accuracy, oracle labels, pseudo-labels, area under the budget curve), so that a saved
benchmark run carries both speed and accuracy; speed is compared with
``--benchmark-compare-fail``, accuracy with ``sslzoo compare`` (see docs/ci.md). A strategy that is
not installed is skipped.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

import sslzoo
from sslzoo._reports.comparison import budget_auc

SEED = 0

MOONS_AL = {"epochs": 30, "budget": 40, "query_size": 10}
MNIST_AL = {"epochs": 5, "budget": 200, "query_size": 50}
REFERENCE = "supervised"

#: (dataset, strategy) → sslzoo.run arguments
CASES: dict[tuple[str, str], dict[str, Any]] = {
    ("moons", "supervised"): {"labels": 10, "options": {"epochs": 100}},
    ("moons", "random"): {"labels": 10, "options": MOONS_AL},
    ("moons", "least_confidence"): {"labels": 10, "options": MOONS_AL},
    ("moons", "margin"): {"labels": 10, "options": MOONS_AL},
    ("moons", "entropy"): {"labels": 10, "options": MOONS_AL},
    ("moons", "bald"): {"labels": 10, "options": MOONS_AL},
    ("moons", "pseudo_label"): {"labels": 10, "options": {"epochs": 100, "t1": 30, "t2": 80}},
    ("moons", "self_training"): {"labels": 10, "options": {"epochs": 30, "max_rounds": 3}},
    ("mnist", "supervised"): {"labels": 100, "options": {"epochs": 10}},
    ("mnist", "random"): {"labels": 100, "options": MNIST_AL},
    ("mnist", "least_confidence"): {"labels": 100, "options": MNIST_AL},
}
SECONDS: dict[tuple[str, str], float] = {}  # (dataset, strategy) → run time in this session


@pytest.fixture(scope="module", autouse=True)
def _warm_up() -> None:
    """One tiny run first, so that no benchmark pays for imports, the registry or torch's first ops."""
    sslzoo.run("supervised", "moons", labels=10, options={"epochs": 1}, device="cpu")


@pytest.mark.parametrize(("dataset", "strategy"), list(CASES), ids=[f"{d}-{s}" for d, s in CASES])
def test_strategy_run_time(benchmark, dataset: str, strategy: str) -> None:
    if strategy not in sslzoo.list_strategies():
        pytest.skip(f"strategy {strategy!r} is not installed")
    kwargs = {**CASES[dataset, strategy], "seed": SEED, "seeds": 1, "device": "cpu"}
    started = time.perf_counter()
    records = benchmark.pedantic(sslzoo.run, args=(strategy, dataset), kwargs=kwargs, rounds=1, iterations=1)
    SECONDS[dataset, strategy] = time.perf_counter() - started
    reference = SECONDS.get((dataset, REFERENCE))  # the cases of a dataset start with the reference
    record = records[0]
    curve = record["curve"]
    benchmark.extra_info.update({
        "strategy": strategy,
        "dataset": dataset,
        "seed": SEED,
        "over_supervised": round(SECONDS[dataset, strategy] / reference, 2) if reference else None,
        "accuracy": record["test_accuracy"],
        "labels": record["oracle_labels"],
        "initial_labels": record["labels"],
        "pseudo_labels": curve[-1].get("pseudo_labels"),
        "pseudo_accuracy": curve[-1].get("pseudo_accuracy"),
        "rounds": len(curve),
        "budget_auc": budget_auc(record),
        "sslzoo": sslzoo.__version__,
    })
    assert math.isfinite(record["test_accuracy"]) and 0.0 <= record["test_accuracy"] <= 1.0
    assert record["oracle_labels"] >= record["labels"]
