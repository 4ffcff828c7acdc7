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
* ``bf16-cnn-bs32`` / ``fp32-cnn-bs32``: a bare step loop with and without CPU bf16 autocast.

Intra-op threads: ``SSLZOO_BENCH_THREADS`` (default 1, see speedlib.THREADS), the same for every
side; the matmul peak is measured at that thread count (and, for reference, on all cores).

Images/s, FLOPs per image (``torch.utils.flop_counter``, forward + backward) and the ratios go to
``benchmarks/results/speed_training.json``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import speedlib
from sslzoo import models
from sslzoo.api import create_strategy
from sslzoo.engine import Run, RunSpec

SEED = 0
THREADS = speedlib.configure_threads()
CNN_IMAGES = 8192
MLP_IMAGES = 16384
RESULTS: dict[str, Any] = {"runs": {}}


def flops_per_image(model_name: str, batch: int) -> float:
    """Forward + backward FLOPs of one training step, per image."""
    model = getattr(models, model_name)((1, 28, 28), 10)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / batch


class PlainRun(Run):
    """The engine loop with what this issue added switched off (for-each Adam, NCHW weights)."""

    def _fresh_model(self) -> None:
        self.model = self.model_spec.build(tuple(self.x.shape[1:]), self.dataset.num_classes).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.opts.lr, foreach=True)
        self.ctx.model = self.model


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
    for name, r in runs.items():
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
    ids = engine_run("cnn", 32, CNN_IMAGES).ledger.train().tolist()  # the same labeled images
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
