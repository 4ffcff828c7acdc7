"""Cost per training step of each step-level SSL strategy against FixMatch's, in one benchmark run.

    python -m pytest benchmarks/test_speed_ssl_steps.py -s

The workload is consistency-mnist100's: the bundled MNIST, 100 class-balanced labels, the ``cnn``
model, Adam, each strategy at its paper's defaults (FixMatch and its descendants: labeled batches of
64 and unlabeled batches of 7 x 64; MixMatch and ReMixMatch: 64 and 64, with K = 2 and K = 8 views).
Each case is one training round in this process (``Run.setup()`` excluded, then ``Run.train_round``
of ``EPOCHS`` epochs of the 100 labels, 2 steps each, no evaluation) on a fresh model, timed
``ROUNDS`` times with the cases alternated; the median over the steps is its cost per step. FixMatch (and the
methods that mask like it) trains the strong view of a confident id only, so its first steps, where
few ids reach 0.95, are cheap; the reference is FixMatch with every id kept (``threshold`` 0), the
cost of a step once its model is confident, which is most of its steps. One torch thread (``SSLZOO_BENCH_THREADS``).

The figures are seconds per step and the ratio to FixMatch's with every id kept; the
consistency-mnist100 preset sizes each strategy's steps by that ratio to fit FixMatch's 30-minute
budget. Results:
``benchmarks/results/speed_ssl_steps.json``.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import speedlib

from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.run import Run, RunSpec

THREADS = speedlib.configure_threads()
REFERENCE = "fixmatch_all_kept"
#: case → (strategy, its options beside the common ones)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    REFERENCE: ("fixmatch", {"threshold": 0.0}),
    "fixmatch": ("fixmatch", {}),
    **{name: (name, {}) for name in ("flexmatch", "freematch", "softmatch", "dash", "uda", "mixmatch", "remixmatch",
                                     "simmatch", "mean_teacher", "pi_model", "vat")}}
EPOCHS = 15  # of the 100 labels in batches of 64, the last one kept: 30 steps
STEPS = EPOCHS * 2
ROUNDS = 2  # each case timed this many times, the cases alternated; the median is kept


def _round(strategy: str, options: dict[str, Any]) -> float:
    """Seconds of one training round of ``strategy`` (a fresh model, ``STEPS`` steps), set-up excluded."""
    every = {"optimizer": "adam", "lr": 0.002, "epochs": EPOCHS, "eval_every": 0, **options}
    run = Run(RunSpec(strategy, "mnist", labels=100, seed=0, model="cnn", device="cpu", options=every),
              create_strategy(strategy, **every))
    run.setup()
    start = time.perf_counter()
    run.train_round(0)
    return time.perf_counter() - start


def test_cost_per_step_against_fixmatch() -> None:
    _round("fixmatch", {"threshold": 0.0})  # warm-up: allocator, kernels
    seconds: dict[str, list[float]] = {case: [] for case in CASES}
    for _ in range(ROUNDS):
        for case, (strategy, options) in CASES.items():
            seconds[case].append(_round(strategy, options))
    per_step = {case: statistics.median(times) / STEPS for case, times in seconds.items()}
    results: dict[str, Any] = {
        case: {"seconds_per_step": round(step, 4), "over_fixmatch_all_kept": round(step / per_step[REFERENCE], 3),
               "rounds_s": [round(t, 2) for t in seconds[case]]}
        for case, step in per_step.items()}
    path = speedlib.save("speed_ssl_steps", {"environment": speedlib.environment(), "threads": THREADS,
                                             "steps": STEPS, "results": results})
    print(f"\n{'case':<18}{'s/step':>8}{'x fixmatch, all kept':>22}   ({path})")
    for case, row in results.items():
        print(f"{case:<18}{row['seconds_per_step']:>8.3f}{row['over_fixmatch_all_kept']:>22.2f}")
    assert all(step > 0 for step in per_step.values()), per_step
