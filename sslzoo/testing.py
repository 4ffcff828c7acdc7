"""The strategy contract suite, for sslzoo's own strategies and for plugin authors.

Every strategy, built-in or third-party, must pass it::

    from sslzoo.testing import StrategyContract

    class TestMyStrategy(StrategyContract):
        strategy = "my_strategy"          # the registered name (or a composite "A+B")

Each check runs a tiny two-moons problem on the CPU (seconds): the run finishes with finite
losses and a valid record; ``select`` returns unique global ids from the pool and the oracle
budget holds; the oracle is read only inside ``label`` and only for ids that then become
oracle-labeled; the same seed gives the same record. :func:`check_strategy` runs them all
without pytest. Needs pytest (the ``test`` extra) only for :class:`StrategyContract`.

:func:`only_plugins` isolates a test from the other installed plugins (a fresh registry with the
built-ins and the named distributions only), for a plugin's ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sslzoo.api import create_strategy, option_names
from sslzoo.context import Oracle
from sslzoo.engine import Run, RunSpec
from sslzoo.plugins import LOAD_ENV
from sslzoo.registry import Registry, default_registry, reset_default_registry

TINY_DATA = {"n_train": 200, "n_test": 200, "noise": 0.1}
TINY_LABELS = 10
TINY_OPTIONS: dict[str, Any] = {
    "epochs": 3, "batch_size": 16, "query_size": 5, "budget": 25, "max_rounds": 2, "passes": 4,
    "t1": 1.0, "t2": 2.0, "unlabeled_batch_size": 32, "threshold": 0.6,
}


@dataclass
class SelectCall:
    """One round-phase ``select``: what it was offered and what it returned."""

    round: int
    candidates: torch.Tensor
    chosen: torch.Tensor


@dataclass
class TinyRun:
    """A finished tiny run with what the spies saw."""

    job: Run
    record: dict[str, Any]
    selects: list[SelectCall] = field(default_factory=list)
    oracle_reads: list[torch.Tensor] = field(default_factory=list)


@contextlib.contextmanager
def only_plugins(load: str = "") -> Iterator[None]:
    """Within the block, the default registry is a fresh one holding the built-ins and only the
    distributions named in ``load`` (comma-separated, as ``SSLZOO_LOAD_PLUGINS``; "" for none).
    The variable is restored and the registry rebuilt on the way out."""
    before = os.environ.get(LOAD_ENV)
    os.environ[LOAD_ENV] = load
    reset_default_registry()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LOAD_ENV, None)
        else:
            os.environ[LOAD_ENV] = before
        reset_default_registry()


@contextlib.contextmanager
def _spy_oracle(reads: list[torch.Tensor]) -> Iterator[None]:
    original = Oracle.__call__

    def spy(self: Oracle, ids: torch.Tensor):  # type: ignore[no-untyped-def]
        result = original(self, ids)
        reads.append(ids.detach().clone())
        return result

    Oracle.__call__ = spy  # type: ignore[method-assign]
    try:
        yield
    finally:
        Oracle.__call__ = original  # type: ignore[method-assign]


def tiny_options(name: str, registry: Registry | None = None, **overrides: Any) -> dict[str, Any]:
    """The tiny-run options that strategy ``name`` has, with ``overrides``."""
    accepted = option_names(name, registry)
    return {k: v for k, v in {**TINY_OPTIONS, **overrides}.items() if k in accepted}


def tiny_run(name: str, seed: int = 0, registry: Registry | None = None, **overrides: Any) -> TinyRun:
    """Run ``name`` on a tiny two-moons problem, spying on ``select`` and the oracle."""
    registry = registry or default_registry()
    options = tiny_options(name, registry, **overrides)
    strategy = create_strategy(name, registry, **options)
    spec = RunSpec(strategy=name, dataset="moons", labels=TINY_LABELS, seed=seed, device="cpu",
                   options=options, dataset_options=dict(TINY_DATA))
    job = Run(spec, strategy, registry)
    result = TinyRun(job, {})
    select = strategy.select

    def spy_select(ctx, candidates):  # type: ignore[no-untyped-def]
        chosen = select(ctx, candidates)
        if ctx.phase == "round":
            result.selects.append(SelectCall(ctx.round, candidates.clone(), chosen.clone()))
        return chosen

    strategy.select = spy_select  # type: ignore[method-assign]
    with _spy_oracle(result.oracle_reads):
        result.record = job.execute()
    return result


def check_record(run: TinyRun) -> None:
    """The run finished with a complete, sane record."""
    record = run.record
    assert record["curve"], "the record has no curve entry"
    for entry in record["curve"]:
        assert 0.0 <= entry["test_accuracy"] <= 1.0 and math.isfinite(entry["test_accuracy"])
    assert record["test_accuracy"] == record["curve"][-1]["test_accuracy"]
    assert record["oracle_labels"] >= record["labels"] == TINY_LABELS
    assert isinstance(record["termination"], str) and record["termination"]


def check_selection(run: TinyRun) -> None:
    """Round-phase ``select`` returns unique global ids from the pool; the budget holds."""
    for call in run.selects:
        chosen = call.chosen
        assert chosen.dtype == torch.long and chosen.dim() == 1, f"round {call.round}: not 1-D int64 ids"
        assert chosen.unique().numel() == chosen.numel(), f"round {call.round}: duplicate ids"
        assert torch.isin(chosen, call.candidates).all(), f"round {call.round}: ids outside the pool"
    budget = run.record["options"].get("budget")
    if budget is not None:
        assert run.record["oracle_labels"] <= budget, "more oracle labels than the budget"
    query_size = run.record["options"].get("query_size")
    labels = [e["labels"] for e in run.record["curve"]]
    if query_size is not None:
        assert all(0 <= b - a <= query_size for a, b in zip(labels, labels[1:])), labels


def check_oracle(run: TinyRun) -> None:
    """Every id the oracle revealed is oracle-labeled: no pseudo-label was copied from the truth."""
    oracle_ids = run.job.ledger.oracle()
    for ids in run.oracle_reads:
        assert torch.isin(ids, oracle_ids).all(), "the oracle was read for ids that did not become oracle labels"


def check_determinism(run: TinyRun, registry: Registry | None = None) -> None:
    """A second run with the same seed gives the same record, wall time aside."""
    again = tiny_run(run.record["strategy"], seed=run.record["seed"], registry=registry).record
    first = {k: v for k, v in run.record.items() if k != "wall_seconds"}
    assert first == {k: v for k, v in again.items() if k != "wall_seconds"}, \
        "two runs with the same seed gave different records"


def check_strategy(name: str, registry: Registry | None = None) -> None:
    """Run the whole contract on strategy ``name``; raises AssertionError on the first breach."""
    run = tiny_run(name, registry=registry)
    check_record(run)
    check_selection(run)
    check_oracle(run)
    check_determinism(run, registry)


class StrategyContract:
    """Subclass as ``TestSomething`` and set ``strategy``: pytest then runs the contract on it."""

    strategy: ClassVar[str] = ""

    def _name(self) -> str:
        assert self.strategy, "set the class attribute strategy to the registered name"
        return self.strategy

    def test_tiny_run_gives_a_valid_record(self) -> None:
        check_record(tiny_run(self._name()))

    def test_select_returns_unique_pool_ids_within_budget(self) -> None:
        check_selection(tiny_run(self._name()))

    def test_oracle_is_read_only_for_ids_it_labels(self) -> None:
        check_oracle(tiny_run(self._name()))

    def test_same_seed_gives_the_same_record(self) -> None:
        check_determinism(tiny_run(self._name()))
