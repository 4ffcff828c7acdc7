"""What the CIFAR-10 presets cost: seconds per step on this CPU, FLOPs per step, and the full protocols'
GPU-hours estimated from them.

    python -m pytest benchmarks/test_speed_cifar10.py -s

The inputs are a synthetic CIFAR-10 in its on-disk format (1000 training and 200 test images of random
pixels: the cost of a step does not depend on what the pixels show). Each case runs the engine's own
code with the preset's full options, only fewer steps:

* ``fixmatch_step``: one training step of ``fixmatch-cifar10`` (WRN-28-2, a labeled batch of 64 and an
  unlabeled batch of 7 x 64, weak and strong views), every unlabeled id kept (threshold 0: the cost of
  a step once the model is confident, most of the 2^20);
* ``simclr_image``: one input of ``al-cifar10``'s SimCLR stage (ResNet-18, two views, forward and
  backward), from a stage of 2 batches of 64;
* ``resnet18_forward_image``: one image through the CIFAR ResNet-18 without gradients, what scoring the
  pool and the test set costs per image each round.

Seconds are the median over ``ROUNDS`` timings, as wall time and as this process's CPU time (one torch
thread: on a machine shared with other runs the CPU time is the cost, the wall time the cost plus the
wait). FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and
convolutions, forward and backward: what a GPU spends its time on). The full protocols' GPU-hours are
their FLOPs divided by a sustained throughput: ``GPU_TFLOPS`` (default 40 TFLOP/s, about a quarter of
an A100's or H100's dense bf16/TF32 peak, what small-batch training of these models sustains) — an
estimate on paper, stated with the throughput it assumes. Results:
``benchmarks/results/speed_cifar10.json``.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import speedlib
import torch
from torch.utils.flop_counter import FlopCounterMode

from sslzoo import create_model
from sslzoo._contract.registry import default_registry
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.pretraining import Pretraining
from sslzoo._engine.run import Run, RunSpec
from sslzoo._ops.inference import eval_mode
from sslzoo._planning.preset import get_preset
from tests.user_data import cifar10_root

THREADS = speedlib.configure_threads()
ROUNDS = 3
GPU_TFLOPS = float(os.environ.get("SSLZOO_GPU_TFLOPS", "40"))
STEPS = 2  # fixmatch steps per timed round
SIMCLR_INPUTS, SIMCLR_BATCH = 128, 64
FORWARD_IMAGES = 256


def _timed(work: Any) -> tuple[float, float]:
    """(wall, CPU) seconds of ``work()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def _flops(work: Any) -> int:
    with FlopCounterMode(display=False) as counter:
        work()
    return int(counter.get_total_flops())


def _fixmatch_round(root: Path) -> Any:
    """A callable: one training round of fixmatch-cifar10's full options, ``STEPS`` steps, on a fresh
    model (the run's set-up, data and model, done before it is returned)."""
    preset = get_preset("fixmatch-cifar10")
    options = {**preset.options, "threshold": 0.0, "epochs": 1, "samples_per_epoch": 64 * STEPS, "eval_every": 0}
    options.pop("lr_schedule")  # one epoch: the cosine's first value, the lr itself
    run = Run(RunSpec("fixmatch", "cifar10", labels=40, seed=0, model=preset.model, device="cpu", options=options,
                      dataset_options={"data_dir": str(root)}), create_strategy("fixmatch", **options))
    run.setup()
    return lambda: run.train_round(0)


def _simclr_stage(root: Path) -> Any:
    """A callable: al-cifar10's SimCLR stage on ``SIMCLR_INPUTS`` images, one epoch of batches of 64."""
    preset = get_preset("al-cifar10")
    registry = default_registry()
    text = preset.options["pretrain"].replace("epochs=500", "epochs=1") + f",batch_size={SIMCLR_BATCH}"
    stage = Pretraining(registry, text, "benchmark")
    model = preset.model or "resnet18"

    def build(shape: tuple[int, ...], classes: int) -> torch.nn.Module:
        return create_model(model, shape, classes)
    x = torch.rand(SIMCLR_INPUTS, 3, 32, 32)
    ids = torch.arange(SIMCLR_INPUTS)
    return lambda: stage.train(build, x, ids, 10, torch.device("cpu"), "fp32")


def _forward(root: Path) -> Any:
    model = create_model("resnet18", (3, 32, 32), 10)
    x = torch.rand(FORWARD_IMAGES, 3, 32, 32)

    def work() -> None:
        with torch.no_grad(), eval_mode(model):
            for start in range(0, FORWARD_IMAGES, 128):
                model(x[start:start + 128])
    return work


def test_cifar10_presets_cost_per_step_and_gpu_hours(tmp_path: Path) -> None:
    root = cifar10_root(tmp_path, per_batch=200, n_test=200)
    cases = {"fixmatch_step": (_fixmatch_round, STEPS), "simclr_image": (_simclr_stage, SIMCLR_INPUTS),
             "resnet18_forward_image": (_forward, FORWARD_IMAGES)}
    for prepare, _ in cases.values():
        prepare(root)()  # warm-up: allocator, kernels, the dataset's cache
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, (prepare, _) in cases.items():
            timings[name].append(_timed(prepare(root)))
    flops = {name: _flops(prepare(root)) / units for name, (prepare, units) in cases.items()}
    per = {name: {"wall_s": statistics.median(w for w, _ in times) / cases[name][1],
                  "cpu_s": statistics.median(c for _, c in times) / cases[name][1]} for name, times in timings.items()}
    fixmatch_steps = 2 ** 20
    fixmatch_runs = 4 * 3 * 3  # strategies x label counts x seeds
    pool, test, rounds, simclr_epochs = 49_990, 10_000, 6, 500  # al-cifar10: the pool after 10 labels, 6 models
    full = {
        "fixmatch-cifar10": {"flops_per_run": fixmatch_steps * flops["fixmatch_step"], "runs": fixmatch_runs,
                             "cpu_days_per_run": fixmatch_steps * per["fixmatch_step"]["cpu_s"] / 86_400},
        "al-cifar10": {
            # the stage once (shared by every run), then each run scores pool + test each round (the probe's own
            # training on at most 60 labels x 100 epochs is a small fraction of one pass over the pool)
            "flops_stage": simclr_epochs * (pool + 10) * flops["simclr_image"],
            "flops_per_run": rounds * (pool + test) * flops["resnet18_forward_image"], "runs": 4 * 3,
            "cpu_days_stage": simclr_epochs * (pool + 10) * per["simclr_image"]["cpu_s"] / 86_400}}
    for protocol in full.values():
        total = protocol.get("flops_stage", 0) + protocol["runs"] * protocol["flops_per_run"]
        protocol["gpu_hours"] = round(total / (GPU_TFLOPS * 1e12) / 3600, 1)
    machine = speedlib.matmul_flops()
    path = speedlib.save("speed_cifar10", {
        "threads": THREADS, "rounds": ROUNDS, "gpu_tflops_assumed": GPU_TFLOPS,
        "cpu_matmul_gflops": round(machine / 1e9, 1),
        "per_unit": {name: {"wall_s": round(v["wall_s"], 4), "cpu_s": round(v["cpu_s"], 4),
                            "gflops": round(flops[name] / 1e9, 3),
                            "achieved_gflops_per_cpu_s": round(flops[name] / 1e9 / v["cpu_s"], 1)}
                     for name, v in per.items()},
        "full_protocols": {name: {k: (round(v, 3) if isinstance(v, float) else v) for k, v in p.items()}
                           for name, p in full.items()}})
    print(f"\n{'case':<24}{'wall s':>9}{'CPU s':>9}{'GFLOP':>9}   ({path})")
    for name, v in per.items():
        print(f"{name:<24}{v['wall_s']:>9.3f}{v['cpu_s']:>9.3f}{flops[name] / 1e9:>9.2f}")
    for name, p in full.items():
        print(f"{name}: {p['gpu_hours']} GPU-hours at {GPU_TFLOPS:g} TFLOP/s sustained")
    assert all(v["cpu_s"] > 0 for v in per.values()) and all(f > 0 for f in flops.values()), (per, flops)
