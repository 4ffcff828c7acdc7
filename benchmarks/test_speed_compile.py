"""Does ``torch.compile`` pay for training on this machine? A bare step loop, eager vs compiled.

    python -m pytest benchmarks/test_speed_compile.py --benchmark-json benchmarks/results/speed_compile_benchmark.json

For each model and batch size (``cnn`` at 32, ``mlp`` at 1024): the same model (channels_last),
fused Adam and device-resident random data, 4096 images per timing; each mode is timed twice,
interleaved (eager, compiled, eager, compiled), so the ratio holds on a loaded machine. The
compile warm-up (the first steps, which trace and compile) is reported separately.

Intra-op threads: ``SSLZOO_BENCH_THREADS`` (default 1). Images/s per mode and the ratio
compiled / eager go to ``benchmarks/results/speed_compile.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import speedlib
import torch
import torch.nn.functional as F
from torch import nn

from sslzoo._ops import networks as models

SEED = 0
IMAGES = 4096
WARMUP_STEPS = 4
THREADS = speedlib.configure_threads()
RESULTS: dict[str, Any] = {"threads": THREADS, "runs": {}}


def step_loop(model: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor, batch: int) -> float:
    """One pass of training steps over ``x`` in batches of ``batch``; returns the seconds it took."""
    started = time.perf_counter()
    for start in range(0, x.shape[0], batch):
        loss = F.cross_entropy(model(x[start:start + batch]), y[start:start + batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def trainee(name: str, compiled: bool) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.optim.Optimizer]:
    model: nn.Module = getattr(models, name)((1, 28, 28), 10).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    return (torch.compile(model) if compiled else model), optimizer


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    torch.manual_seed(SEED)
    yield
    speedlib.save("speed_compile", RESULTS)
    print("\n", RESULTS)


@pytest.mark.parametrize(("name", "batch"), [("cnn", 32), ("mlp", 1024)], ids=["cnn-bs32", "mlp-bs1024"])
def test_compiled_vs_eager_training(benchmark, name: str, batch: int) -> None:
    x, y = torch.randn(IMAGES, 1, 28, 28), torch.randint(0, 10, (IMAGES,))
    eager, compiled = trainee(name, compiled=False), trainee(name, compiled=True)
    warm = x[:batch * WARMUP_STEPS], y[:batch * WARMUP_STEPS]
    step_loop(*eager, *warm, batch)
    compile_warmup = step_loop(*compiled, *warm, batch)
    seconds = {"eager": step_loop(*eager, x, y, batch), "compiled": step_loop(*compiled, x, y, batch),
               "eager2": step_loop(*eager, x, y, batch)}
    seconds["compiled2"] = benchmark.pedantic(step_loop, args=(*compiled, x, y, batch), rounds=1, iterations=1)
    rate = {mode: round(IMAGES / s) for mode, s in seconds.items()}
    RESULTS["runs"][f"{name}-bs{batch}"] = run = {
        "images_per_s": rate, "compile_warmup_s": round(compile_warmup, 1),
        "compiled_over_eager": round((rate["compiled"] + rate["compiled2"]) / (rate["eager"] + rate["eager2"]), 2)}
    benchmark.extra_info.update(run)
