"""End-to-end wall time of scaled protocol runs, and the accuracy check of the speed options.

    python -m pytest benchmarks/test_speed_e2e.py --benchmark-json benchmarks/results/speed_e2e_benchmark.json

* ``scaled gal2017-mnist``: BALD (T=100 over a random 2000 of the pool per round), cnn, 20 balanced
  labels +10 per round to 60 (4 acquisition rounds), retrain from scratch, Adam, batch 128,
  100 epochs per round; MNIST cut to 6000 train / 2000 test images.
* ``scaled pl-cnn-mnist1000``: pseudo-label (step schedule, T1=100, T2=108, alpha_f=3, unlabeled
  batch 256, a labeled pass every 5 unlabeled batches), cnn, SGD lr 0.1, batch 32, 1000 labels,
  10 warm-up + 4 pseudo-labeling epochs; MNIST cut to 6000 train / 2000 test images.
* ``ci pl-cnn-mnist1000`` × seeds 0-2, engine as shipped (fused optimizer, channels_last) vs the
  plain engine (for-each optimizer, NCHW): the mean test accuracy must stay within seed noise
  (|Δmean| ≤ 2 × the larger seed std, or ≤ 1 point).

The configurations are inline (they do not read the presets). Results:
``benchmarks/results/speed_e2e.json`` (wall seconds, accuracies, device, versions).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any

import pytest
import speedlib
import torch

from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.run import Learner, Run, RunSpec

THREADS = speedlib.configure_threads()
RESULTS: dict[str, Any] = {"threads": THREADS, "runs": {}}

PL_OPTIONS = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 32, "epochs": 14, "warmup": 10,
              "schedule": "step", "t1": 100, "t2": 108, "alpha_f": 3, "unlabeled_batch_size": 256,
              "labeled_every": 5}
CONFIGS: dict[str, dict[str, Any]] = {
    "scaled gal2017-mnist": {
        "strategy": "bald", "labels": 20, "model": "cnn",
        "options": {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "epochs": 100, "passes": 100,
                    "query_size": 10, "budget": 60, "pool_subset": 2000, "retrain": "scratch"},
        "dataset_options": {"n_train": 6000, "n_test": 2000}},
    "scaled pl-cnn-mnist1000": {
        "strategy": "pseudo_label", "labels": 1000, "model": "cnn", "options": PL_OPTIONS,
        "dataset_options": {"n_train": 6000, "n_test": 2000}},
}
CI_PL = {"strategy": "pseudo_label", "labels": 1000, "model": "cnn",
         "options": {**PL_OPTIONS, "epochs": 6, "warmup": 4, "t2": 102},
         "dataset_options": {"n_train": 3000, "n_test": 1000}}


def plain_optimizer(model: torch.nn.Module, opts: Any) -> torch.optim.Optimizer:
    """The optimizer before this issue: for-each kernels, no fusion."""
    if opts.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=opts.lr, momentum=opts.momentum,
                               weight_decay=opts.weight_decay, foreach=True)
    return torch.optim.Adam(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay, foreach=True)


class PlainRun(speedlib.UnsharedRun):
    """The engine with the speed options off: for-each optimizer, NCHW weights, no shared prefix."""

    def fresh_learner(self) -> Learner:
        learner = super().fresh_learner()
        model = learner.model.to(memory_format=torch.contiguous_format)
        return dataclasses.replace(learner, model=model, optimizer=plain_optimizer(model, self.training))


def execute(config: dict[str, Any], seed: int = 0, cls: type[Run] = Run) -> dict[str, Any]:
    strategy = create_strategy(config["strategy"], **config["options"])
    spec = RunSpec(config["strategy"], "mnist", labels=config["labels"], seed=seed, model=config["model"],
                   device="cpu", options=config["options"], dataset_options=config["dataset_options"])
    return cls(spec, strategy).execute()


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    speedlib.save("speed_e2e", RESULTS)
    print("\n", RESULTS)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_scaled_run(benchmark, name: str) -> None:
    t = time.perf_counter()
    record = benchmark.pedantic(execute, args=(CONFIGS[name],), rounds=1, iterations=1)
    RESULTS["runs"][name] = {"config": CONFIGS[name], "wall_seconds": round(time.perf_counter() - t, 2),
                             "test_accuracy": record["test_accuracy"], "oracle_labels": record["oracle_labels"],
                             "rounds": len({e["round"] for e in record["curve"]}),
                             "device": record["device"], "versions": record["versions"]}


def test_speed_options_keep_accuracy(benchmark) -> None:
    def both() -> dict[str, list[float]]:
        return {kind: [execute(CI_PL, seed, cls)["test_accuracy"] for seed in range(3)]
                for kind, cls in (("fast", Run), ("plain", PlainRun))}

    acc = benchmark.pedantic(both, rounds=1, iterations=1)
    mean = {k: statistics.mean(v) for k, v in acc.items()}
    std = {k: statistics.stdev(v) for k, v in acc.items()}
    delta = abs(mean["fast"] - mean["plain"])
    tolerance = max(2 * max(std.values()), 0.01)
    RESULTS["accuracy_check"] = {"config": CI_PL, "seeds": [0, 1, 2], "test_accuracy": acc, "mean": mean,
                                 "std": std, "abs_delta_mean": round(delta, 4), "tolerance": round(tolerance, 4),
                                 "within_seed_noise": delta <= tolerance}
    assert delta <= tolerance, RESULTS["accuracy_check"]
