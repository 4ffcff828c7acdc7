"""BatchBALD against its reference implementation, ``batchbald-redux`` (``get_batchbald_batch``), on
the same MC-dropout probabilities: the batch each selects, their joint mutual information estimates,
and the wall time of both in one run.

    python -m pytest benchmarks/test_speed_batchbald.py \
        --benchmark-json benchmarks/results/speed_batchbald_benchmark.json

* probabilities: ``gal_cnn`` trained 10 epochs on 20 balanced MNIST labels (seed 0, the batch
  preset's start), then T=20 consistent MC-dropout passes (``ctx.predict_mc(..., consistent=True)``)
  over 2000 pool candidates; float64 (what the reference's example feeds it).
* ``sslzoo-batchbald``: :func:`sslzoo._ops.joint_entropy.batchbald` (acquisition size 10, exact joint
  entropies up to 1000 configurations and 1000 sampled ones beyond, on the CPU: its default
  float32 joint entropies); ``batchbald-redux``: ``get_batchbald_batch(log_probs_N_K_C, 10, 1000,
  dtype=torch.double)``. 1000, not the strategy's default 100,000: the reference's cost grows with
  it (one of its calls on 300 candidates took 80 s with 10,000 on this machine, 13x ours), and
  the comparison is of the same computation at equal parameters. Both draw their
  sampled configurations from a generator seeded alike (ours the one passed in, theirs torch's
  global one), with the same calls in the same order, so the same draws.
* agreement: the two batches (target: the same), and the largest difference of their joint
  mutual information estimates where they are exact (the first 4 picks: at most 10^3
  configurations; target ≤ 1e-4) and over the whole batch.

Every time is the median of ``SSLZOO_BENCH_ROUNDS`` (default 3) calls, wall clock and process CPU,
after a warm-up call on 200 candidates; the agreement compares the batches of the timed calls (the
same seed each call). Results: ``benchmarks/results/speed_batchbald.json``.
``batchbald-redux`` is in the optional ``bench`` extra (``pip install sslzoo[bench]``); without
it the peer cases are skipped. Intra-op threads: ``SSLZOO_BENCH_THREADS`` (default 1), the same
for both sides.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

import pytest
import speedlib
import torch

from sslzoo._ops.joint_entropy import batchbald

SEED = 0
THREADS = speedlib.configure_threads()
CANDIDATES, PASSES, BATCH, SAMPLES = 2000, 20, 10, 1000
EXACT_PICKS = 4  # picks 0..3 see at most 10^3 configurations of the batch before them: exact
ROUNDS = int(os.environ.get("SSLZOO_BENCH_ROUNDS", "3"))
BATCHES: dict[str, tuple[list[int], list[float]]] = {}  # each side's batch and joint MI, from its timed calls
RESULTS: dict[str, Any] = {"threads": THREADS, "rounds": ROUNDS, "candidates": CANDIDATES, "T": PASSES,
                           "acquisition_size": BATCH, "joint_samples": SAMPLES, "runs": {}}


@pytest.fixture(scope="module", autouse=True)
def _save():
    yield
    runs = RESULTS["runs"]
    if "sslzoo-batchbald" in runs and "batchbald-redux" in runs:
        for key in ("seconds", "cpu_seconds"):
            ratio = runs["batchbald-redux"][key] / runs["sslzoo-batchbald"][key]
            RESULTS[f"speed_up_over_redux_{key}"] = round(ratio, 2)
    speedlib.save("speed_batchbald", RESULTS)
    print("\n", json.dumps(RESULTS, indent=1))


@pytest.fixture(scope="module")
def probs() -> torch.Tensor:
    """(2000, 10, 20) float64: consistent MC-dropout passes of gal_cnn after training on 20 labels."""
    ctx, candidates = speedlib.batch_round(CANDIDATES, epochs=10, seed=SEED)
    return ctx.predict_mc(candidates, PASSES, consistent=True).double()


def ours(p: torch.Tensor, seed: int = SEED) -> tuple[list[int], list[float]]:
    positions, mi = batchbald(p, BATCH, SAMPLES, torch.Generator().manual_seed(seed))
    return positions.tolist(), mi.tolist()


def redux(p: torch.Tensor, seed: int = SEED) -> tuple[list[int], list[float]]:
    from batchbald_redux.batchbald import get_batchbald_batch

    torch.manual_seed(seed)
    batch = get_batchbald_batch(p.permute(0, 2, 1).log(), BATCH, SAMPLES, dtype=torch.double)
    return batch.indices, batch.scores


def timed(benchmark, name: str, fn, p: torch.Tensor) -> tuple[float, float]:
    fn(p[:200])
    walls, cpus = [], []

    def one() -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        BATCHES[name] = fn(p)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)

    benchmark.pedantic(one, rounds=ROUNDS, iterations=1)
    return statistics.median(walls), statistics.median(cpus)


def test_sslzoo_batchbald_speed(benchmark, probs) -> None:
    wall, cpu = timed(benchmark, "sslzoo", ours, probs)
    RESULTS["runs"]["sslzoo-batchbald"] = {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3)}


def test_batchbald_redux_speed(benchmark, probs) -> None:
    pytest.importorskip("batchbald_redux")
    wall, cpu = timed(benchmark, "redux", redux, probs)
    RESULTS["runs"]["batchbald-redux"] = {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3)}


def test_same_batch_as_batchbald_redux(probs) -> None:
    pytest.importorskip("batchbald_redux")
    (mine, my_mi) = BATCHES["sslzoo"] if "sslzoo" in BATCHES else ours(probs)
    (theirs, their_mi) = BATCHES["redux"] if "redux" in BATCHES else redux(probs)
    gaps = [abs(a - b) for a, b in zip(my_mi, their_mi)]
    RESULTS["agreement"] = {"sslzoo_batch": mine, "redux_batch": theirs, "same_batch": mine == theirs,
                            "joint_mi_sslzoo": [round(v, 6) for v in my_mi],
                            "joint_mi_redux": [round(v, 6) for v in their_mi],
                            "max_gap_exact_picks": max(gaps[:EXACT_PICKS]), "max_gap_all_picks": max(gaps)}
    assert mine == theirs, RESULTS["agreement"]
    assert max(gaps[:EXACT_PICKS]) <= 1e-4, RESULTS["agreement"]
