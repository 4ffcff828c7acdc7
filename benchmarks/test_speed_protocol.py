"""The wall time of a full gal2017-mnist run, estimated from the cost of its parts in one run.

    SSLZOO_BENCH_THREADS=2 python -m pytest benchmarks/test_speed_protocol.py \
        --benchmark-json benchmarks/results/speed_protocol_2threads_benchmark.json

A full run (`sslzoo bench --preset gal2017-mnist -s NAME`) is 99 trainings from scratch (50 epochs
of Adam on 20, 30, ..., 1000 labels), 99 evaluations on the 10,000 test images and 98 acquisitions
(BALD: T=100 MC-dropout passes over a random 2000 of the pool; random: a draw). Here the preset's
own model, options and split are built as a run: training is timed at 20, 260, 510, 760 and 1000
labels (the labeled set grows by random queries in between, which cost nothing; training costs the
same whichever strategy queried), an evaluation, and both acquisitions once each at 510 labels (an
acquisition's cost does not depend on the labeled count: T passes over the same 2000 candidates).
The estimate sums the trainings over the 99 label counts by linear interpolation between the timed
ones.

Results: ``benchmarks/results/speed_protocol[_<N>threads].json`` (each part's seconds, the estimate
per acquisition function).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import speedlib

from sslzoo._engine.catalog import create_strategy, default_registry
from sslzoo._engine.run import Run, RunSpec
from sslzoo._planning.preset import get_preset
from sslzoo._planning.routing import strategy_options

THREADS = speedlib.configure_threads()
TIMED_LABELS = (20, 260, 510, 760, 1000)
ACQUIRED_AT = 510  # mid-run: at 1000 labels the budget is spent and no acquisition follows
RESULTS: dict[str, Any] = {"threads": THREADS}


@pytest.fixture(scope="module", autouse=True)
def _write_results():
    yield
    speedlib.save("speed_protocol", RESULTS)
    print("\n", RESULTS)


def _seconds(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def gal2017_parts() -> dict[str, Any]:
    """Seconds of each part of a full gal2017-mnist run: trainings by label count, one evaluation, one
    acquisition of each kind."""
    preset = get_preset("gal2017-mnist")
    options = strategy_options(["random", "bald"], preset.options, default_registry())
    spec = RunSpec("random", preset.dataset, labels=preset.labels[0], seed=0, model=preset.model, device="cpu",
                   split=preset.split, options=options["random"])
    run = Run(spec, create_strategy("random", **options["random"]))
    run.setup()
    ledger, rnd = run.data.ledger, 0
    training: dict[int, float] = {}
    acquisition: dict[str, float] = {}
    for labels in TIMED_LABELS:
        while ledger.oracle().numel() < labels:
            rnd += 1
            run.ctx.round = rnd  # as Run.execute leaves it between rounds
            stopped = run.acquire(rnd)
            assert stopped is None, stopped
        training[labels] = _seconds(lambda r=rnd: run.train_round(r))
        if labels == ACQUIRED_AT:
            run.ctx.round = rnd + 1
            for name, strategy in (("bald", create_strategy("bald", **options["bald"])), ("random", run.strategy)):
                started = time.perf_counter()
                chosen = strategy.select(run.ctx, ledger.pool())
                acquisition[name] = time.perf_counter() - started
                assert chosen.numel() == strategy.options.query_size, (name, chosen.numel())
    evaluation = _seconds(lambda: run.evaluate(rnd, run.training.epochs, None))
    return {"training": training, "evaluation": evaluation, "acquisition": acquisition}


def test_gal2017_full_run_estimate(benchmark) -> None:
    parts = benchmark.pedantic(gal2017_parts, rounds=1, iterations=1)
    counts = np.arange(20, 1001, 10)  # the 99 label counts a full run trains on
    timed = sorted(parts["training"])
    trainings = float(np.interp(counts, timed, [parts["training"][n] for n in timed]).sum())
    evaluations = len(counts) * parts["evaluation"]
    estimate = {name: round((trainings + evaluations + (len(counts) - 1) * seconds) / 60, 1)
                for name, seconds in parts["acquisition"].items()}
    RESULTS["gal2017-mnist"] = {
        "training_seconds_by_labels": {n: round(s, 2) for n, s in parts["training"].items()},
        "evaluation_seconds": round(parts["evaluation"], 2),
        "acquisition_seconds": {k: round(v, 2) for k, v in parts["acquisition"].items()},
        "trainings_minutes": round(trainings / 60, 1), "evaluations_minutes": round(evaluations / 60, 1),
        "full_run_minutes": estimate}
    assert all(minutes > 0 for minutes in estimate.values())
