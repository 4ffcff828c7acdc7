"""Training throughput: the engine vs a plain DataLoader loop, and achieved FLOP/s vs matmul peak.

    python -m pytest benchmarks/test_speed_training.py --benchmark-json benchmarks/results/speed_training_benchmark.json

Everything is measured in this one run, so the ratios stay meaningful on a loaded machine:

* ``matmul``: this machine's dense fp32 matmul FLOP/s (best of 8 timed 2048×2048 products);
* ``engine-<model>-bs<B>``: ``Run.setup()`` then ``Run.train_round(0)`` (the supervised strategy,
  one epoch over N labeled MNIST images: data on the device, randperm batches, fused Adam,
  channels_last for the CNN);
* ``engine_plain-cnn-bs32``: the same engine loop with a plain (for-each) Adam and NCHW weights,
  to show what the fused optimizer and channels_last buy;
* ``dataloader-cnn-bs32``: the loop users would write instead: torchvision's ``MNIST`` (ToTensor +
  Normalize) → ``Subset`` of the same ids → ``DataLoader(batch_size=32, shuffle=True)`` (default
  ``num_workers=0``), the same model, ``torch.optim.Adam(lr=1e-3)``, cross-entropy;
* ``bf16-cnn-bs32`` / ``fp32-cnn-bs32``: a bare step loop with and without CPU bf16 autocast;
* ``step-cnn-bs256-<precision>``: the engine's training step (``Run._step``: pseudo_label's loss with
  its argmax prediction through the shared prefix and the training forward, backward, fused SGD) of an
  unlabeled-only pseudo-labeling step of pl-cnn-mnist1000 (256 pool images, SGD lr 0.1), the median of
  30 steps, against the matmul peaks of this run (fp32, and bf16 for the bf16 step), with a per-op
  profile (``torch.profiler``, self CPU time per step by op and input shape);
* ``pl-epoch-<variant>``: the median of 3 full-pool epochs of pl-cnn-mnist1000's pseudo-labeling
  phase (59000 unlabeled images in 230 unlabeled-only steps of 256, a labeled pass of 1000 at batch
  32 after every 50): ``before`` (the pseudo-label forward runs the whole model), ``shared`` (it shares
  the training forward's prefix: the engine's default), ``bf16`` (+ ``precision=bf16``). With a
  warm-up epoch and a test-set evaluation of the same variant they estimate the full protocol (one
  seed: 200 warm-up or supervised epochs, 150 pseudo-labeling epochs, 51 evaluations).

Intra-op threads: ``SSLZOO_BENCH_THREADS`` (default 1, see speedlib.THREADS), the same for every
side; the matmul peak is measured at that thread count (and, for reference, on all cores).

Images/s, FLOPs per image (``torch.utils.flop_counter``, forward + backward), step times, epoch
times, profiles and the ratios go to ``benchmarks/results/speed_training.json``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest
import speedlib
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from sslzoo._contract.strategy import Batch, Step
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.run import Learner, Run, RunSpec
from sslzoo._ops import inference
from sslzoo._ops import networks as models

SEED = 0
THREADS = speedlib.configure_threads()
CNN_IMAGES = 8192
MLP_IMAGES = 16384
STEP_BATCH = 256
STEPS = 30
PROFILED_STEPS = 10
EPOCHS = 3  # timed epochs per variant (the median is kept)
SGD = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 32}  # pl-cnn-mnist1000's training options
PL_EPOCH = {**SGD, "epochs": 1, "warmup": 0, "schedule": "step", "t1": 100, "t2": 700, "alpha_f": 3,
            "unlabeled_batch_size": 256, "labeled_every": 50}
#: one seed of pl-cnn-mnist1000: supervised 100 epochs + 1 evaluation; pseudo_label 100 warm-up epochs,
#: 150 pseudo-labeling epochs and an evaluation every 5 epochs (50)
PROTOCOL = {"warmup_epochs": 200, "pl_epochs": 150, "evaluations": 51}
RESULTS: dict[str, Any] = {"runs": {}, "steps": {}, "pl_epochs": {}}


def flops_per_image(model_name: str, batch: int) -> float:
    """Forward + backward FLOPs of one training step, per image."""
    model = getattr(models, model_name)((1, 28, 28), 10)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


class PlainRun(speedlib.UnsharedRun):
    """The engine loop with its speed options off (for-each Adam, NCHW weights, no shared prefix)."""

    def fresh_learner(self) -> Learner:
        learner = super().fresh_learner()
        model = learner.model.to(memory_format=torch.contiguous_format)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.training.lr, foreach=True)
        return dataclasses.replace(learner, model=model, optimizer=optimizer)


def engine_run(model: str, batch: int, images: int, cls: type[Run] = Run) -> Run:
    strategy = create_strategy("supervised", epochs=1, batch_size=batch, lr=1e-3, optimizer="adam")
    run = cls(RunSpec("supervised", "mnist", labels=images, seed=SEED, model=model, device="cpu"), strategy)
    run.setup()
    return run


def record(name: str, model: str, batch: int, images: int, seconds: float) -> None:
    RESULTS["runs"][name] = {"model": model, "batch_size": batch, "images": images,
                             "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1)}


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    torch.manual_seed(SEED)
    yield
    runs, peak = RESULTS["runs"], RESULTS.get("matmul_flops")
    ratios: dict[str, float] = {}
    for r in runs.values():
        if peak and "flops_per_image" in r:
            r["achieved_flops"] = round(r["images_per_s"] * r["flops_per_image"])
            r["fraction_of_matmul_peak"] = round(r["achieved_flops"] / peak, 3)
    def ratio(a: str, b: str) -> None:
        if a in runs and b in runs:
            ratios[f"{a} / {b}"] = round(runs[a]["images_per_s"] / runs[b]["images_per_s"], 2)
    ratio("engine-cnn-bs32", "dataloader-cnn-bs32")
    ratio("engine-cnn-bs32", "engine_plain-cnn-bs32")
    ratio("bf16-cnn-bs32", "fp32-cnn-bs32")
    ratio("engine-mlp-bs1024", "engine-mlp-bs32")
    steps, epochs = RESULTS["steps"], RESULTS["pl_epochs"]
    for name, r in steps.items():
        r["achieved_flops"] = round(r["flops"] / (r["ms"] / 1e3))
        if peak:
            r["fraction_of_matmul_peak"] = round(r["achieved_flops"] / peak, 3)
        if name.endswith("bf16") and RESULTS.get("matmul_flops_bf16"):
            r["fraction_of_bf16_matmul_peak"] = round(r["achieved_flops"] / RESULTS["matmul_flops_bf16"], 3)
    if "step-cnn-bs256-fp32" in steps and "step-cnn-bs256-bf16" in steps:
        ratios["step-cnn-bs256 fp32 / bf16"] = round(
            steps["step-cnn-bs256-fp32"]["ms"] / steps["step-cnn-bs256-bf16"]["ms"], 2)
    for name in ("shared", "bf16"):
        if name in epochs and "before" in epochs:
            ratios[f"pl-epoch before / {name}"] = round(epochs["before"]["seconds"] / epochs[name]["seconds"], 2)
    RESULTS["ratios"] = ratios
    speedlib.save("speed_training", RESULTS)
    print("\n", RESULTS)


def test_matmul_peak(benchmark) -> None:
    flops = benchmark.pedantic(speedlib.matmul_flops, rounds=1, iterations=1)
    RESULTS["matmul_flops"] = round(flops)
    RESULTS["threads"] = THREADS
    torch.set_num_threads(speedlib.os.cpu_count() or 1)
    RESULTS["matmul_flops_all_cores"] = round(speedlib.matmul_flops())
    torch.set_num_threads(THREADS)
    benchmark.extra_info["flops"] = flops


@pytest.mark.parametrize(("model", "batch", "images", "cls"), [
    ("cnn", 32, CNN_IMAGES, Run), ("cnn", 32, CNN_IMAGES, PlainRun),
    ("mlp", 32, MLP_IMAGES, Run), ("mlp", 256, MLP_IMAGES, Run), ("mlp", 1024, MLP_IMAGES, Run),
], ids=["engine-cnn-bs32", "engine_plain-cnn-bs32", "engine-mlp-bs32", "engine-mlp-bs256", "engine-mlp-bs1024"])
def test_engine_training(benchmark, model: str, batch: int, images: int, cls: type[Run]) -> None:
    run = engine_run(model, batch, images, cls)
    run.train_round(0)  # warm-up epoch (allocator, kernels); the timed epoch starts from a fresh model
    t = time.perf_counter()
    benchmark.pedantic(run.train_round, args=(0,), rounds=1, iterations=1)
    name = f"{'engine' if cls is Run else 'engine_plain'}-{model}-bs{batch}"
    record(name, model, batch, images, time.perf_counter() - t)
    RESULTS["runs"][name]["flops_per_image"] = flops_per_image(model, batch)
    benchmark.extra_info.update(RESULTS["runs"][name])


def test_dataloader_training(benchmark, tmp_path_factory) -> None:
    torchvision = pytest.importorskip("torchvision")
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms

    root = speedlib.torchvision_mnist_root(tmp_path_factory.mktemp("tv"))
    ids = engine_run("cnn", 32, CNN_IMAGES).data.ledger.train().tolist()  # the same labeled images
    data = torchvision.datasets.MNIST(str(root), train=True, download=False, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]))
    loader = DataLoader(Subset(data, ids), batch_size=32, shuffle=True)
    model = models.cnn((1, 28, 28), 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def epoch() -> None:
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    for i, (x, y) in enumerate(loader):  # warm-up, as for the engine
        F.cross_entropy(model(x), y).backward()
        if i == 10:
            break
    t = time.perf_counter()
    benchmark.pedantic(epoch, rounds=1, iterations=1)
    record("dataloader-cnn-bs32", "cnn", 32, len(ids), time.perf_counter() - t)
    RESULTS["runs"]["dataloader-cnn-bs32"]["flops_per_image"] = flops_per_image("cnn", 32)
    benchmark.extra_info.update(RESULTS["runs"]["dataloader-cnn-bs32"])


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cpu_autocast(benchmark, dtype: str) -> None:
    """Does bf16 autocast pay on this CPU? A bare step loop on device-resident channels_last data."""
    model = models.cnn((1, 28, 28), 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x, y = torch.randn(CNN_IMAGES // 2, 1, 28, 28), torch.randint(0, 10, (CNN_IMAGES // 2,))
    cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")

    def epoch() -> None:
        for s in range(0, x.shape[0], 32):
            with cast:
                loss = F.cross_entropy(model(x[s:s + 32]), y[s:s + 32])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    epoch()
    t = time.perf_counter()
    benchmark.pedantic(epoch, rounds=1, iterations=1)
    record(f"{dtype}-cnn-bs32", "cnn", 32, x.shape[0], time.perf_counter() - t)


def pl_run(strategy: str, options: dict[str, Any], cls: type[Run] = Run) -> Run:
    """A pl-cnn-mnist1000 run (full MNIST, 1000 balanced labels, ``cnn``), set up."""
    run = cls(RunSpec(strategy, "mnist", labels=1000, seed=SEED, model="cnn", device="cpu"),
              create_strategy(strategy, **options))
    run.setup()
    return run


def engine_step(precision: str) -> Callable[[], torch.Tensor]:
    """The engine's training step on 256 pool images and no labeled part: pseudo_label's loss (the argmax
    prediction through the shared prefix, then the training forward), counted, backward, SGD."""
    run = pl_run("pseudo_label", {**PL_EPOCH, "precision": precision})
    run.use(run.fresh_learner())
    run.learner.model.train()
    ledger = run.data.ledger
    ids = ledger.pool()[:STEP_BATCH]
    none = ids[:0]
    step = Step(Batch(none, run.data.x[none], ledger.target[none], ledger.weight[none], ledger.source[none]), ids)
    tally = run.tally()
    return lambda: run._step(run.strategy, step, tally)


def op_profile(step: Callable[[], Any], rows: int = 12) -> list[dict[str, Any]]:
    """Self CPU time per step of the costliest ops (by op and input shape), and their share."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(PROFILED_STEPS):
            step()
    events = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "input_shapes": str(e.input_shapes),
             "ms_per_step": round(e.self_cpu_time_total / PROFILED_STEPS / 1e3, 3),
             "share": round(e.self_cpu_time_total / total, 3)} for e in events[:rows]]


def test_matmul_peak_bf16(benchmark) -> None:
    flops = benchmark.pedantic(speedlib.matmul_flops, kwargs={"dtype": torch.bfloat16}, rounds=1, iterations=1)
    RESULTS["matmul_flops_bf16"] = round(flops)
    benchmark.extra_info["flops"] = flops


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_engine_step(benchmark, precision: str) -> None:
    step = engine_step(precision)
    benchmark.pedantic(step, rounds=STEPS, iterations=1, warmup_rounds=5)
    seconds = benchmark.stats.stats.median
    RESULTS["steps"][f"step-cnn-bs256-{precision}"] = {
        "batch_size": STEP_BATCH, "steps": STEPS, "ms": round(seconds * 1e3, 2),
        "flops": flops_per_image("cnn", STEP_BATCH) * STEP_BATCH, "profile": op_profile(step)}
    benchmark.extra_info["ms"] = seconds * 1e3


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.mark.parametrize(("variant", "cls", "precision"), [
    ("before", speedlib.UnsharedRun, "fp32"), ("shared", Run, "fp32"), ("bf16", Run, "bf16"),
], ids=["before", "shared", "bf16"])
def test_pseudo_label_epoch(benchmark, variant: str, cls: type[Run], precision: str) -> None:
    run = pl_run("pseudo_label", {**PL_EPOCH, "precision": precision}, cls)
    benchmark.pedantic(run.train_round, args=(0,), rounds=EPOCHS, iterations=1)
    epoch = benchmark.stats.stats.median
    warmup = pl_run("supervised", {**SGD, "epochs": 1, "precision": precision})
    warmup_epoch = timed(lambda: warmup.train_round(0))
    data, judge = run.data, run.judge
    evaluation = timed(lambda: judge.accuracy(inference.predicted_classes(run.learner.model, data.x_test,
                                                                         precision=precision)))
    seconds = (PROTOCOL["warmup_epochs"] * warmup_epoch + PROTOCOL["pl_epochs"] * epoch
               + PROTOCOL["evaluations"] * evaluation)
    RESULTS["pl_epochs"][variant] = {
        "seconds": round(epoch, 3), "warmup_epoch_seconds": round(warmup_epoch, 3),
        "evaluation_seconds": round(evaluation, 3), "protocol_minutes_per_seed": round(seconds / 60, 1)}
    benchmark.extra_info.update(RESULTS["pl_epochs"][variant])
