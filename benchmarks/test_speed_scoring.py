"""Scoring throughput: MC-dropout passes against their limit, against the previous path, and
sslzoo's BALD against baal's MC-dropout wrapper + BALD heuristic.

    python -m pytest benchmarks/test_speed_scoring.py --benchmark-json benchmarks/results/speed_scoring_benchmark.json

Everything is measured in this one run, so the ratios stay meaningful on a loaded machine.

* MC suffix: ``gal_cnn`` (the gal2017-mnist model), 2000 candidates, T=100: the layers after the
  first dropout, run T times on the candidates' cached prefix activations. ``mc-suffix``:
  sslzoo's path (``inference.mc_passes`` on the blocks ``mc_probabilities`` makes: masks from
  random words, see sslzoo._ops.masks); ``mc-suffix-torch-dropout``: the previous path (the T copies
  of each chunk batched, torch's own dropout, i.e. ``bernoulli_`` masks); ``mc-suffix-matmul``:
  its limit, the matmuls of the same shapes alone (T × each Linear layer of the suffix on 2000
  rows). Fraction of the limit = matmul seconds / suffix seconds. ``suffix_parts``: the same
  passes with each dropout call cut down (no mask, a copy, the keep bits and a copy), to show
  where the time goes.
* BALD: ``cnn`` trained 2 epochs on 1000 MNIST labels (seed 0), a 5000-image pool, T=20.
  ``sslzoo-bald-T20``: ``BALD.score`` (the engine's path: the prefix before the first dropout
  once per image, the T passes in blocks, scores on the device); ``torch-dropout-bald-T20``: the
  previous path (same prefix split, torch's dropout); ``baal-bald-T20``:
  ``ModelWrapper(MCDropoutModule(model))``, ``predict_on_dataset(TensorDataset(pool),
  iterations=T)`` (batch 64, ``workers=0``, replicated in memory, its default) then
  ``BALD().get_uncertainties``.
* agreement: a 1000-image pool with T=100, same weights, independent dropout masks: Spearman
  rank correlation of sslzoo's BALD with baal's (target ≥ 0.9) and with the previous path's, and
  of sslzoo with itself under another seed (the Monte-Carlo noise floor).
* paths: whole ``mc_probabilities`` calls for every built-in model with dropout at a few sizes,
  sslzoo's path vs the previous one (process CPU time, median of 3): where the previous one is
  faster, if anywhere.
* ``sslzoo-entropy``: plain single-pass entropy scoring of the full 60k pool.
* memory: in a subprocess, the extra peak RSS of scoring the full 60k pool with T=100
  (``ru_maxrss`` after training minus after scoring; target ≤ 2 GB).

Every time is the median of ``SSLZOO_BENCH_ROUNDS`` (default 3) calls, wall clock and process CPU.
Results: ``benchmarks/results/speed_scoring.json`` (``speed_scoring_<tag>.json`` with
``SSLZOO_BENCH_TAG=<tag>``, for a run of a few cases; memory: ``speed_scoring_memory.json``: run
it alone with ``-k memory``, it takes minutes). baal is an optional extra (``pip install
sslzoo[bench]``); without it the baal cases are skipped. Intra-op threads: ``SSLZOO_BENCH_THREADS``
(default 1), the same for every side.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import pytest
import speedlib
import torch
import torch.nn.functional as F

from sslzoo import scores
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.run import Run, RunSpec
from sslzoo._ops import inference
from sslzoo._ops import networks as models
from sslzoo._ops.dropout import StochasticDropout
from sslzoo._ops.masks import KeepBits

SEED = 0
THREADS = speedlib.configure_threads()
SUFFIX_CANDIDATES, SUFFIX_T = 2000, 100
SPEED_POOL, SPEED_T = 5000, 20
AGREE_POOL, AGREE_T = 1000, 100
BAAL_BATCH = 64
PREVIOUS_CHUNK_ELEMENTS = 32 * 2**20  # the previous path's activations per batch of T copies
ROUNDS = int(os.environ.get("SSLZOO_BENCH_ROUNDS", "3"))
TAG = os.environ.get("SSLZOO_BENCH_TAG", "")  # a separate results file (e.g. a quiet run of a few cases)
RESULTS: dict[str, Any] = {"threads": THREADS, "rounds": ROUNDS, "runs": {}}


def trained_run(strategy: str = "bald", seed: int = SEED) -> tuple[Run, Any]:
    """A Run whose model was trained 2 epochs on 1000 labels; (run, strategy)."""
    strat = create_strategy(strategy, epochs=2, batch_size=32, lr=1e-3, optimizer="adam")
    run = Run(RunSpec(strategy, "mnist", labels=1000, seed=seed, model="cnn", device="cpu"), strat)
    run.setup()
    run.train_round(0)
    run.ctx.round = 1
    return run, strat


def ratio(a: str, b: str, key: str) -> float:
    """How many times faster run ``a`` is than run ``b`` (``key`` seconds of b / of a)."""
    runs = RESULTS["runs"]
    return round(runs[b][key] / runs[a][key], 2)


def record(name: str, seconds: float, cpu: float, **info: Any) -> None:
    RESULTS["runs"][name] = {**info, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3)}


def timed(benchmark, fn, args: tuple, warmup: tuple) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of ``ROUNDS`` calls ``fn(*args)`` under pytest-benchmark,
    after a small warm-up call ``fn(*warmup)``."""
    fn(*warmup)
    walls, cpus = [], []

    def one() -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        fn(*args)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)

    benchmark.pedantic(one, rounds=ROUNDS, iterations=1)
    return statistics.median(walls), statistics.median(cpus)


@pytest.fixture(scope="module", autouse=True)
def _save():
    yield
    if not RESULTS["runs"] and set(RESULTS) == {"threads", "rounds", "runs"}:
        return  # nothing measured here (e.g. ``-k memory``, which writes its own file)
    runs, ratios = RESULTS["runs"], {}
    pairs = [("mc-suffix", "mc-suffix-torch-dropout", "MC suffix speed-up over torch's dropout (x)"),
             ("mc-suffix", "mc-suffix-matmul", "MC suffix, fraction of its matmul limit"),
             ("sslzoo-bald-T20", "baal-bald-T20", "BALD T=20, sslzoo over baal (x)"),
             ("sslzoo-bald-T20", "torch-dropout-bald-T20", "BALD T=20, speed-up over torch's dropout (x)")]
    for a, b, label in pairs:
        if a in runs and b in runs:
            ratios[label] = ratio(a, b, "seconds")
            ratios[f"{label}, CPU time"] = ratio(a, b, "cpu_seconds")
    RESULTS["ratios"] = ratios
    speedlib.save(f"speed_scoring{'_' + TAG if TAG else ''}", RESULTS)
    print("\n", json.dumps(RESULTS, indent=1))


# -- the previous path, kept here as the reference ----------------------------------------------------


def torch_dropout_passes(rest: list[torch.nn.Module], h: torch.Tensor, passes: int) -> torch.Tensor:
    """(k, C, T): the previous MC path on cached prefix activations ``h``: each chunk repeated T
    times and run through ``rest`` in one batch, with torch's dropout (``bernoulli_`` masks)."""
    chunk = max(1, min(inference.CHUNK, PREVIOUS_CHUNK_ELEMENTS // (h[0].numel() * passes)))
    out = []
    for start in range(0, h.shape[0], chunk):
        part = h[start:start + chunk]
        k = part.shape[0]
        repeated = part.unsqueeze(0).expand(passes, *part.shape).reshape(passes * k, *part.shape[1:])
        logits = inference.run_layers(rest, repeated).float().reshape(passes, k, -1)
        out.append(torch.softmax(logits, dim=2).permute(1, 2, 0))
    return torch.cat(out)


def torch_dropout_probabilities(model: torch.nn.Module, x: torch.Tensor, passes: int) -> torch.Tensor:
    """(k, C, T) of the previous path: a Sequential split before its first dropout layer, the
    prefix once, ``torch_dropout_passes`` for the rest."""
    with torch.inference_mode(), inference.eval_mode(model, dropout=True):
        layers = list(model)
        first = next(i for i, layer in enumerate(layers)
                     if any(isinstance(m, inference.DROPOUT_TYPES) for m in layer.modules()))
        h = inference.run_layers(layers[:first], x)
        return torch_dropout_passes(layers[first:], h, passes)


def torch_dropout_bald(model: torch.nn.Module, x: torch.Tensor, passes: int, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return scores.bald(torch_dropout_probabilities(model, x, passes))


GRID = [("moons_mlp", 100, 20), ("moons_mlp", 2000, 100), ("mlp", 100, 20), ("mlp", 2000, 100),
        ("cnn", 100, 20), ("cnn", 2000, 20), ("gal_cnn", 100, 20), ("gal_cnn", 2000, 20)]


def test_mc_paths_across_models() -> None:
    """Whole ``mc_probabilities`` calls, sslzoo's path vs the previous one, for every built-in model
    with dropout at a few sizes: where, if anywhere, the previous path is faster."""
    rows = []
    for name, k, passes in GRID:
        shape = (2,) if name == "moons_mlp" else (1, 28, 28)
        torch.manual_seed(SEED)
        model = getattr(models, name)(shape, 10)
        if len(shape) == 3:
            model = model.to(memory_format=torch.channels_last)
        x, generator = torch.randn(k, *shape), torch.Generator().manual_seed(SEED)
        ours = median_cpu(lambda m=model, x=x, k=k, t=passes, g=generator:
                          inference.mc_probabilities(m, x, torch.arange(k), t, g))
        previous = median_cpu(lambda m=model, x=x, t=passes: torch_dropout_probabilities(m, x, t))
        rows.append({"model": name, "candidates": k, "T": passes, "sslzoo_cpu_ms": round(ours * 1e3, 1),
                     "torch_dropout_cpu_ms": round(previous * 1e3, 1), "speed_up": round(previous / ours, 2)})
    RESULTS["paths"] = rows


def median_cpu(fn, repeats: int = 3) -> float:
    """Median process CPU seconds of ``repeats`` calls of ``fn`` after a warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


# -- MC suffix against its limit ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suffix():
    """gal_cnn (channels_last, as the engine runs it) split at its first dropout; the prefix
    activations of 2000 MNIST-shaped candidates, and their blocks as mc_probabilities makes them."""
    torch.manual_seed(SEED)
    model = models.gal_cnn((1, 28, 28), 10).to(memory_format=torch.channels_last)
    x = torch.randn(SUFFIX_CANDIDATES, 1, 28, 28)
    with torch.inference_mode(), inference.eval_mode(model, dropout=True):
        prefix, rest = inference.split_at_dropout(model, x[:1])
        h = inference.run_layers(prefix, x).contiguous()  # as mc_probabilities: no spatial layer in the rest
    rows = inference.mc_rows(h[0].numel(), h.device)
    blocks = [h[i:i + min(inference.CHUNK, rows)] for i in range(0, h.shape[0], min(inference.CHUNK, rows))]
    return model, rest, h, blocks, rows


def test_mc_suffix_speed(benchmark, suffix) -> None:
    model, rest, _, blocks, rows = suffix
    generator = torch.Generator().manual_seed(SEED)

    def run(passes: int) -> None:
        stochastic = StochasticDropout(generator)
        with torch.inference_mode(), inference.eval_mode(model, dropout=True):
            for block in blocks:
                inference.mc_passes(rest, block, passes, stochastic, rows)

    wall, cpu = timed(benchmark, run, (SUFFIX_T,), (2,))
    record("mc-suffix", wall, cpu, candidates=SUFFIX_CANDIDATES, T=SUFFIX_T, model="gal_cnn", block_rows=rows)


def test_mc_suffix_torch_dropout_speed(benchmark, suffix) -> None:
    model, rest, h, _, _ = suffix

    def run(passes: int) -> None:
        with torch.inference_mode(), inference.eval_mode(model, dropout=True):
            torch_dropout_passes(rest, h, passes)

    wall, cpu = timed(benchmark, run, (SUFFIX_T,), (2,))
    record("mc-suffix-torch-dropout", wall, cpu, candidates=SUFFIX_CANDIDATES, T=SUFFIX_T, model="gal_cnn")


def test_mc_suffix_matmul_limit(benchmark, suffix) -> None:
    _, rest, _, _, _ = suffix
    linears = [m for layer in rest for m in layer.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(SUFFIX_CANDIDATES, m.in_features) for m in linears]

    def run(passes: int) -> None:
        with torch.inference_mode():
            for _ in range(passes):
                for m, a in zip(linears, inputs):
                    F.linear(a, m.weight, m.bias)

    wall, cpu = timed(benchmark, run, (SUFFIX_T,), (2,))
    flops = 2 * SUFFIX_T * SUFFIX_CANDIDATES * sum(m.in_features * m.out_features for m in linears)
    record("mc-suffix-matmul", wall, cpu, candidates=SUFFIX_CANDIDATES, T=SUFFIX_T, model="gal_cnn",
           shapes=[f"{SUFFIX_CANDIDATES}x{m.in_features} @ {m.in_features}x{m.out_features}" for m in linears],
           gflop_per_s=round(flops / wall / 1e9, 1))


def test_mc_suffix_parts(suffix, monkeypatch) -> None:
    """Where the suffix's time goes: the same passes with each dropout call cut down (process CPU
    ms per pass over the 2000 candidates, median of 3): ``no masks`` returns its input (the rest
    of the pipeline), ``copy`` returns a fresh copy, ``bits + copy`` also draws the keep bits."""
    model, rest, _, blocks, rows = suffix
    generator = torch.Generator().manual_seed(SEED)
    passes = 20

    def run() -> None:
        stochastic = StochasticDropout(generator)
        with torch.inference_mode(), inference.eval_mode(model, dropout=True):
            for block in blocks:
                inference.mc_passes(rest, block, passes, stochastic, rows)

    def bits_and_copy(self, x, p, call, inplace):
        self.streams.setdefault(p, KeepBits(p, self.generator)).take(x.numel())
        return x * 1.0

    parts = {"full": median_cpu(run)}
    variants = {"bits + copy": bits_and_copy, "copy": lambda self, x, p, call, inplace: x * 1.0,
                "no masks": lambda self, x, p, call, inplace: x}
    for name, dropout in variants.items():
        with monkeypatch.context() as patch:
            patch.setattr(StochasticDropout, "dropout", dropout)
            parts[name] = median_cpu(run)
    ms = {name: round(seconds / passes * 1e3, 2) for name, seconds in parts.items()}
    RESULTS["suffix_parts_cpu_ms_per_pass"] = {
        **ms, "lookup + multiply": round(ms["full"] - ms["bits + copy"], 2),
        "keep bits": round(ms["bits + copy"] - ms["copy"], 2), "fresh output": round(ms["copy"] - ms["no masks"], 2)}


# -- BALD scoring against baal -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    run, strat = trained_run()
    return run, strat, run.data.ledger.pool()


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
    run.ctx.generator.manual_seed(seed)  # the masks come from the run's generator
    return strat.score(run.ctx, ids)


def plain_model(run: Run) -> torch.nn.Module:
    """The same weights as a user's model would hold them (NCHW), for baal."""
    return copy.deepcopy(run.learner.model).to(memory_format=torch.contiguous_format).eval()


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.double().argsort().argsort().double(), b.double().argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def test_sslzoo_bald_speed(benchmark, trained) -> None:
    run, strat, pool = trained
    wall, cpu = timed(benchmark, sslzoo_bald, (run, strat, pool[:SPEED_POOL], SPEED_T, SEED),
                      (run, strat, pool[:256], SPEED_T, SEED))
    record("sslzoo-bald-T20", wall, cpu, pool=SPEED_POOL, T=SPEED_T, images_per_s=round(SPEED_POOL / wall, 1))


def test_torch_dropout_bald_speed(benchmark, trained) -> None:
    run, _, pool = trained
    x = run.data.x[pool[:SPEED_POOL]]
    model = run.learner.model
    wall, cpu = timed(benchmark, torch_dropout_bald, (model, x, SPEED_T, SEED), (model, x[:256], SPEED_T, SEED))
    record("torch-dropout-bald-T20", wall, cpu, pool=SPEED_POOL, T=SPEED_T, images_per_s=round(SPEED_POOL / wall, 1))


def test_baal_bald_speed(benchmark, trained) -> None:
    pytest.importorskip("baal")
    run, _, pool = trained
    x = run.data.x[pool[:SPEED_POOL]].contiguous()
    model = plain_model(run)
    wall, cpu = timed(benchmark, baal_bald, (model, x, SPEED_T, SEED), (model, x[:256], SPEED_T, SEED))
    record("baal-bald-T20", wall, cpu, pool=SPEED_POOL, T=SPEED_T, batch_size=BAAL_BATCH,
           images_per_s=round(SPEED_POOL / wall, 1))


def test_bald_agreement(trained) -> None:
    pytest.importorskip("baal")
    run, strat, pool = trained
    ids = pool[:AGREE_POOL]
    ours = sslzoo_bald(run, strat, ids, AGREE_T, SEED)
    ours2 = sslzoo_bald(run, strat, ids, AGREE_T, SEED + 1)
    previous = torch_dropout_bald(run.learner.model, run.data.x[ids], AGREE_T, SEED)
    theirs = baal_bald(plain_model(run), run.data.x[ids].contiguous(), AGREE_T, SEED)
    agree = {"pool": AGREE_POOL, "T": AGREE_T, "spearman_sslzoo_vs_baal": round(spearman(ours, theirs), 4),
             "spearman_sslzoo_vs_torch_dropout": round(spearman(ours, previous), 4),
             "spearman_sslzoo_vs_sslzoo_other_seed": round(spearman(ours, ours2), 4),
             "spearman_torch_dropout_vs_baal": round(spearman(previous, theirs), 4),
             "mean_bald_sslzoo": round(float(ours.mean()), 5),
             "mean_bald_torch_dropout": round(float(previous.mean()), 5),
             "mean_bald_baal": round(float(theirs.mean()), 5)}
    RESULTS["agreement"] = agree
    assert agree["spearman_sslzoo_vs_baal"] >= 0.9, agree


def test_sslzoo_entropy_speed(benchmark, trained) -> None:
    run, _, _ = trained
    strat = create_strategy("entropy", epochs=2, batch_size=32, lr=1e-3, optimizer="adam")
    ids = torch.arange(run.data.x.shape[0])
    wall, cpu = timed(benchmark, strat.score, (run.ctx, ids), (run.ctx, ids[:256]))
    record("sslzoo-entropy", wall, cpu, pool=ids.numel(), images_per_s=round(ids.numel() / wall, 1))


MEMORY_SCRIPT = """
import json, resource, sys, time, torch
sys.path.insert(0, {bench!r})
torch.set_num_threads({threads})
from test_speed_scoring import trained_run, sslzoo_bald
run, strat = trained_run()
ids = torch.arange(run.data.x.shape[0])
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
