"""Deep-ensemble BALD's round (K = 5 members) against MC-dropout BALD's round (one model), and the
members' batched training against training them one after the other, in one run.

    python -m pytest -q -s benchmarks/test_speed_ensemble.py

* workload: gal2017-mnist's (``gal_cnn``, Adam lr 1e-3, batch 128, even last batch, 50 epochs, the
  Keras L2 recipe, retrained from scratch every round, 2000 pool candidates scored per round) at 20
  labels (the preset's start), on the CPU.
* a round: the run's model trained on the labels (``train_round``) and one ``select`` of 10 ids.
  ``bald`` scores T = 20 MC-dropout passes (its default; T = 100 as the preset is also timed);
  ``ensemble_bald`` trains K = 5 members on the same labels (``ctx.ensemble``: one batched pass,
  :mod:`sslzoo._engine.ensemble`) and scores their 5 deterministic predictions.
* members: the 5 members' training alone, batched (``train_ensemble``) and one member after the
  other (the same members, batches and optimizer, in a loop), on the same labels.

Each time is the median of ``SSLZOO_BENCH_ROUNDS`` (default 3) repetitions, the cases interleaved,
after a warm-up round; the cores are shared with other work, so the figures that matter are the
ratios, each taken within this one run. Results: ``benchmarks/results/speed_ensemble.json``.
Intra-op threads: ``SSLZOO_BENCH_THREADS`` (default 1), the same for every case.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
import speedlib
import torch

from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.ensemble import _train_one, member_seeds, train_ensemble
from sslzoo._engine.run import Run, RunSpec

THREADS = speedlib.configure_threads()
ROUNDS = int(os.environ.get("SSLZOO_BENCH_ROUNDS", "3"))
MEMBERS = 5
OPTIONS: dict[str, Any] = {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "last_batch": "even", "epochs": 50,
                           "weight_decay": 7.0, "recipe": "keras_l2_hidden", "retrain": "scratch", "query_size": 10,
                           "pool_subset": 2000}
CASES: dict[str, dict[str, Any]] = {"bald_T20": {"strategy": "bald", "passes": 20},
                                    "bald_T100": {"strategy": "bald", "passes": 100},
                                    "ensemble_bald_K5": {"strategy": "ensemble_bald", "members": MEMBERS}}
RESULTS: dict[str, Any] = {
    "threads": THREADS, "rounds": ROUNDS, "members": MEMBERS, "workload": "gal2017-mnist options, gal_cnn, CPU",
    "note": "shared cores: every figure is a median of interleaved repetitions and the ratios are taken within "
            "this one run; compare ratios, not seconds, across runs",
    "labels": {}}


@pytest.fixture(scope="module", autouse=True)
def _save():
    yield
    speedlib.save("speed_ensemble", RESULTS)
    print("\n", json.dumps(RESULTS, indent=1))


def built(case: dict[str, Any], labels: int) -> Run:
    """A run of ``case`` on MNIST at ``labels`` labels, set up and through a warm-up round."""
    name, options = case["strategy"], {k: v for k, v in case.items() if k != "strategy"}
    strategy = create_strategy(name, **OPTIONS, **options)
    run = Run(RunSpec(name, "mnist", labels=labels, seed=0, model="gal_cnn", device="cpu"), strategy)
    run.setup()
    run.train_round(0)
    run.ctx.round = 1
    strategy.select(run.ctx, run.data.ledger.pool())
    return run


def one_round(run: Run) -> dict[str, float]:
    """Seconds of one round: the model's training and one select."""
    started = time.perf_counter()
    run.train_round(1)
    trained = time.perf_counter()
    run.ctx.round = 1
    run.strategy.select(run.ctx, run.data.ledger.pool())
    return {"train": trained - started, "select": time.perf_counter() - trained,
            "round": time.perf_counter() - started}


def members_serially(run: Run) -> None:
    """The 5 members of ``ctx.ensemble``, trained one after the other (the same members and batches)."""
    seeds = member_seeds(run.spec.seed, run.ctx.round, MEMBERS)
    ids = run.data.ledger.train()
    with torch.random.fork_rng(devices=[]):
        for seed in seeds:
            torch.manual_seed(seed)
            model = run.fresh_member()
            _train_one(model, torch.Generator().manual_seed(seed), run.data.x, ids, run.data.ledger, run.training,
                       run.ctx.activation)


def members_batched(run: Run) -> None:
    ensemble = train_ensemble(run.fresh_member, member_seeds(run.spec.seed, run.ctx.round, MEMBERS), run.data.x,
                              run.data.ledger, run.training, run.ctx.activation)
    assert ensemble.batched


def median_seconds(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(s[key] for s in samples), 3) for key in samples[0]}


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


@pytest.mark.parametrize("labels", [20])
def test_deep_ensemble_bald_round_against_mc_dropout_bald_round(labels):
    runs = {name: built(case, labels) for name, case in CASES.items()}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in CASES}
    members: dict[str, list[float]] = {"batched": [], "serial": []}
    ensemble_run = runs["ensemble_bald_K5"]
    for _ in range(ROUNDS):
        for name, run in runs.items():
            samples[name].append(one_round(run))
        members["batched"].append(timed(lambda: members_batched(ensemble_run)))
        members["serial"].append(timed(lambda: members_serially(ensemble_run)))
    seconds = {name: median_seconds(s) for name, s in samples.items()}
    ensemble = seconds["ensemble_bald_K5"]["round"]
    result = {
        "seconds": seconds,
        "members_training_seconds": {k: round(statistics.median(v), 3) for k, v in members.items()},
        "ratio_ensemble_bald_K5_to_bald_T20": round(ensemble / seconds["bald_T20"]["round"], 2),
        "ratio_ensemble_bald_K5_to_bald_T100": round(ensemble / seconds["bald_T100"]["round"], 2),
        "ratio_members_serial_to_batched": round(statistics.median(members["serial"])
                                                 / statistics.median(members["batched"]), 2),
    }
    RESULTS["labels"][str(labels)] = result
    print(labels, json.dumps(result))
    assert result["ratio_ensemble_bald_K5_to_bald_T20"] < MEMBERS
