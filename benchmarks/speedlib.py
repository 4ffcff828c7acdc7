"""Shared helpers of the speed benchmarks (benchmarks/test_speed_*.py): environment, matmul peak, results."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sslzoo._contract.context import Context
from sslzoo._default_plugins import pseudo_label
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.run import Fit, Run, RunSpec
from sslzoo._ops.prefix import SharedPrefix

RESULTS = Path(__file__).resolve().parent / "results"

#: intra-op threads of every speed benchmark (both sides of each comparison). The default 1: on
#: this shared 2-core machine, 2 OpenMP threads contend with other processes and small-batch steps
#: run 3-6x slower than with 1 (measured; see docs/performance.md).
THREADS = int(os.environ.get("SSLZOO_BENCH_THREADS", "1"))


def configure_threads() -> int:
    torch.set_num_threads(THREADS)
    return THREADS


def environment() -> dict[str, Any]:
    """Device and versions, stored with every result."""
    import sslzoo

    info: dict[str, Any] = {
        "torch": torch.__version__, "sslzoo": getattr(sslzoo, "__version__", "?"),
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(), "cpu_threads": torch.get_num_threads(),
        "cores": os.cpu_count(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import torchvision
        info["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version
        info["baal"] = version("baal")
    except Exception:
        pass
    return info


def matmul_flops(n: int = 2048, repeats: int = 8, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """This machine's dense matmul FLOP/s in ``dtype``: the best of ``repeats`` timed n×n @ n×n products."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


class NothingShared(SharedPrefix):
    """A shared prefix that shares nothing: pseudo_label's unlabeled-only steps predict with the whole
    model and train with another whole forward pass (sslzoo before the shared prefix was added)."""

    @property
    def shares(self) -> bool:
        return False


@contextlib.contextmanager
def prefix_unshared() -> Iterator[None]:
    """Within the block, pseudo_label makes two separate forward passes per unlabeled-only step."""
    original = pseudo_label.SharedPrefix
    pseudo_label.SharedPrefix = NothingShared  # type: ignore[misc]
    try:
        yield
    finally:
        pseudo_label.SharedPrefix = original  # type: ignore[misc]


class UnsharedRun(Run):
    """The engine whose pseudo-label forward runs the whole model instead of sharing the training
    forward's prefix (the engine before that was added)."""

    def train_round(self, *args: Any, **kwargs: Any) -> Fit:
        with prefix_unshared():
            return super().train_round(*args, **kwargs)


def torchvision_mnist_root(tmp: Path) -> Path:
    """A torchvision MNIST root (``tmp/MNIST/raw/*-ubyte``) made from the files bundled with sslzoo."""
    from sslzoo._datasets.mnist import BUNDLED_DIR, FILES

    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        out = raw / name[:-len(".gz")]
        if not out.exists():
            with gzip.open(BUNDLED_DIR / name, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return tmp


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the environment (``<name>_<N>threads.json``
    when ``SSLZOO_BENCH_THREADS`` is N > 1, so runs at both thread counts are kept)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"{name}.json" if THREADS == 1 else f"{name}_{THREADS}threads.json")
    path.write_text(json.dumps({"environment": environment(), **payload}, indent=2) + "\n")
    return path


def batch_round(candidates: int, *, epochs: int, seed: int) -> tuple[Context, torch.Tensor]:
    """The context of ``gal_cnn`` after its first round on 20 class-balanced MNIST labels (Adam lr 1e-3,
    batch 128, ``epochs`` epochs) and a random ``candidates`` of its pool, as a batch preset's first
    acquisition sees them."""
    strategy = create_strategy("batchbald", epochs=epochs, batch_size=128, lr=1e-3, optimizer="adam")
    run = Run(RunSpec("batchbald", "mnist", labels=20, seed=seed, model="gal_cnn", device="cpu"), strategy)
    run.setup()
    run.train_round(0)
    run.ctx.round = 1
    pool = run.data.ledger.pool()
    return run.ctx, pool[torch.randperm(pool.numel(), generator=torch.Generator().manual_seed(seed))[:candidates]]
