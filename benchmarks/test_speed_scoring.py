"""Scoring throughput: sslzoo's MC-dropout BALD vs baal's MC-dropout wrapper + BALD heuristic.

    python -m pytest benchmarks/test_speed_scoring.py --benchmark-json benchmarks/results/speed_scoring_benchmark.json

One model (``cnn``, trained 2 epochs on 1000 MNIST labels, seed 0), the same pool and T for both:

* ``sslzoo-bald-T20`` / ``baal-bald-T20``: BALD scores of a 5000-image pool with T=20. sslzoo:
  ``BALD.score`` (the engine's path: prefix before the first dropout once per image, the T
  passes batched, scores on the device, chunked). baal: ``ModelWrapper(MCDropoutModule(model))``,
  ``predict_on_dataset(TensorDataset(pool), iterations=T)`` (batch 64, ``workers=0``, replicated
  in memory, its default) then ``BALD().get_uncertainties``.
* agreement: both score a 1000-image pool with T=100 (same weights, independent dropout masks);
  Spearman rank correlation of the two BALD vectors (target ≥ 0.9), and of sslzoo with itself
  under another seed (the Monte-Carlo noise floor).
* ``sslzoo-entropy``: plain single-pass entropy scoring of the full 60k pool.
* memory: in a subprocess, the extra peak RSS of scoring the full 60k pool with T=100
  (``ru_maxrss`` after training minus after scoring; target ≤ 2 GB).

Results: ``benchmarks/results/speed_scoring.json`` (memory: ``speed_scoring_memory.json``; run it
alone with ``-k memory``, it takes ~8 minutes on the loaded 2-core machine). baal is an optional extra (``pip install
sslzoo[bench]``); without it the baal cases are skipped.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from typing import Any

import pytest
import torch

import speedlib
from sslzoo.api import create_strategy
from sslzoo.engine import Run, RunSpec

SEED = 0
THREADS = speedlib.configure_threads()
SPEED_POOL, SPEED_T = 5000, 20
AGREE_POOL, AGREE_T = 1000, 100
BAAL_BATCH = 64
RESULTS: dict[str, Any] = {"threads": THREADS, "runs": {}}


def trained_run(strategy: str = "bald", seed: int = SEED) -> tuple[Run, Any]:
    """A Run whose model was trained 2 epochs on 1000 labels; (run, strategy)."""
    strat = create_strategy(strategy, epochs=2, batch_size=32, lr=1e-3, optimizer="adam")
    run = Run(RunSpec(strategy, "mnist", labels=1000, seed=seed, model="cnn", device="cpu"), strat)
    run.setup()
    run.train_round(0)
    run.ctx.round, run.ctx.phase = 1, "round"
    return run, strat


@pytest.fixture(scope="module")
def trained():
    run, strat = trained_run()
    pool = run.ledger.pool()
    yield run, strat, pool
    ratios = {}
    runs = RESULTS["runs"]
    if "baal-bald-T20" in runs and "sslzoo-bald-T20" in runs:
        ratios["sslzoo-bald-T20 / baal-bald-T20 (images/s)"] = round(
            runs["sslzoo-bald-T20"]["images_per_s"] / runs["baal-bald-T20"]["images_per_s"], 2)
    RESULTS["ratios"] = ratios
    speedlib.save("speed_scoring", RESULTS)
    print("\n", json.dumps(RESULTS, indent=1))


def baal_bald(model: torch.nn.Module, x: torch.Tensor, passes: int, seed: int) -> torch.Tensor:
    from baal.active.heuristics import BALD
    from baal.bayesian.dropout import MCDropoutModule
    from baal.modelwrapper import ModelWrapper, TrainingArgs

    torch.manual_seed(seed)
    wrapper = ModelWrapper(MCDropoutModule(model), TrainingArgs(batch_size=BAAL_BATCH, use_cuda=False, workers=0))
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(x.shape[0], dtype=torch.long))
    predictions = wrapper.predict_on_dataset(dataset, iterations=passes, verbose=False)
    return torch.as_tensor(BALD().get_uncertainties(predictions))


def sslzoo_bald(run: Run, strat: Any, ids: torch.Tensor, passes: int, seed: int) -> torch.Tensor:
    strat.options = type(strat.options)(**{**strat.options.__dict__, "passes": passes})
    torch.manual_seed(seed)
    return strat.score(run.ctx, ids)


def plain_model(run: Run) -> torch.nn.Module:
    """The same weights as a user's model would hold them (NCHW), for baal."""
    return copy.deepcopy(run.model).to(memory_format=torch.contiguous_format).eval()


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.double().argsort().argsort().double(), b.double().argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def test_sslzoo_bald_speed(benchmark, trained) -> None:
    run, strat, pool = trained
    ids = pool[:SPEED_POOL]
    sslzoo_bald(run, strat, ids[:256], SPEED_T, SEED)  # warm-up
    t = time.perf_counter()
    benchmark.pedantic(sslzoo_bald, args=(run, strat, ids, SPEED_T, SEED), rounds=1, iterations=1)
    dt = time.perf_counter() - t
    RESULTS["runs"]["sslzoo-bald-T20"] = {"pool": SPEED_POOL, "T": SPEED_T, "seconds": round(dt, 3),
                                          "images_per_s": round(SPEED_POOL / dt, 1)}


def test_baal_bald_speed(benchmark, trained) -> None:
    pytest.importorskip("baal")
    run, _, pool = trained
    x = run.x[pool[:SPEED_POOL]].contiguous()
    model = plain_model(run)
    baal_bald(model, x[:256], SPEED_T, SEED)  # warm-up
    t = time.perf_counter()
    benchmark.pedantic(baal_bald, args=(model, x, SPEED_T, SEED), rounds=1, iterations=1)
    dt = time.perf_counter() - t
    RESULTS["runs"]["baal-bald-T20"] = {"pool": SPEED_POOL, "T": SPEED_T, "batch_size": BAAL_BATCH,
                                        "seconds": round(dt, 3), "images_per_s": round(SPEED_POOL / dt, 1)}


def test_bald_agreement(trained) -> None:
    pytest.importorskip("baal")
    run, strat, pool = trained
    ids = pool[:AGREE_POOL]
    ours = sslzoo_bald(run, strat, ids, AGREE_T, SEED)
    ours2 = sslzoo_bald(run, strat, ids, AGREE_T, SEED + 1)
    theirs = baal_bald(plain_model(run), run.x[ids].contiguous(), AGREE_T, SEED)
    agree = {"pool": AGREE_POOL, "T": AGREE_T, "spearman_sslzoo_vs_baal": round(spearman(ours, theirs), 4),
             "spearman_sslzoo_vs_sslzoo_other_seed": round(spearman(ours, ours2), 4),
             "mean_bald_sslzoo": round(float(ours.mean()), 5), "mean_bald_baal": round(float(theirs.mean()), 5)}
    RESULTS["agreement"] = agree
    assert agree["spearman_sslzoo_vs_baal"] >= 0.9, agree


def test_sslzoo_entropy_speed(benchmark, trained) -> None:
    run, _, _ = trained
    strat = create_strategy("entropy", epochs=2, batch_size=32, lr=1e-3, optimizer="adam")
    ids = torch.arange(run.x.shape[0])
    t = time.perf_counter()
    benchmark.pedantic(strat.score, args=(run.ctx, ids), rounds=1, iterations=1)
    dt = time.perf_counter() - t
    RESULTS["runs"]["sslzoo-entropy"] = {"pool": ids.numel(), "seconds": round(dt, 3),
                                         "images_per_s": round(ids.numel() / dt, 1)}


MEMORY_SCRIPT = """
import json, resource, sys, time, torch
sys.path.insert(0, {bench!r})
torch.set_num_threads({threads})
from test_speed_scoring import trained_run, sslzoo_bald
run, strat = trained_run()
ids = torch.arange(run.x.shape[0])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
scores = sslzoo_bald(run, strat, ids, 100, 0)
dt = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"pool": ids.numel(), "T": 100, "seconds": round(dt, 2), "peak_rss_before_mb": before // 1024,
                  "peak_rss_after_mb": after // 1024, "extra_peak_rss_mb": (after - before) // 1024,
                  "finite": bool(torch.isfinite(scores).all())}}))
"""


def test_memory_full_pool_T100(benchmark) -> None:
    script = MEMORY_SCRIPT.format(bench=str(speedlib.RESULTS.parent), threads=THREADS)
    out = benchmark.pedantic(subprocess.run, args=([sys.executable, "-c", script],),
                             kwargs={"capture_output": True, "text": True, "check": True}, rounds=1, iterations=1)
    memory = json.loads(out.stdout.strip().splitlines()[-1])
    speedlib.save("speed_scoring_memory", {"threads": THREADS, "memory_full_pool_T100": memory})
    assert memory["extra_peak_rss_mb"] <= 2048, memory
