"""The strategy contract suite, for sslzoo's own strategies and for plugin authors.

Every strategy, built-in or third-party, must pass it::

    from sslzoo.testing import StrategyContract

    class TestMyStrategy(StrategyContract):
        strategy = "my_strategy"          # the registered name (or a composite "A+B")

Each check runs a tiny two-moons problem on the CPU (seconds): the run finishes with finite
losses and a valid record; ``select`` returns unique global ids from the pool and the oracle
budget holds; no hidden label leaks into what the strategy does (:func:`check_leak`: a second
run with the true labels of the never-queried ids permuted must select, label and weigh the
same); the same seed gives the same record. :func:`check_strategy` runs them all without pytest.
Needs pytest (the ``test`` extra) only for :class:`StrategyContract`.

:func:`only_plugins` isolates a test from the other installed plugins (a fresh registry with the
built-ins and the named distributions only), for a plugin's ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from sslzoo._contract.context import Context
from sslzoo._contract.dataset import Arrays, Dataset
from sslzoo._contract.labels import ORACLE
from sslzoo._contract.plugin_api import Alias, deprecated_alias
from sslzoo._contract.plugins import LOAD_ENV
from sslzoo._contract.registry import Registry, default_registry, reset_default_registry
from sslzoo._contract.strategy import Strategy
from sslzoo._engine.catalog import create_strategy, option_names
from sslzoo._engine.learner import probed_run
from sslzoo._engine.run import Run, RunSpec, Trace

TINY_DATA = {"n_train": 200, "n_test": 200, "noise": 0.1}
TINY_LABELS = 10
TINY_SPLIT = "random"  # the starting ids do not depend on any label, so the leak check can permute hidden ones
TINY_OPTIONS: dict[str, Any] = {  # lr 0.1: three epochs make pseudo-labels confident enough to be given
    "epochs": 3, "batch_size": 16, "lr": 0.1, "query_size": 5, "budget": 25, "max_rounds": 2, "passes": 4,
    "t1": 1.0, "t2": 2.0, "unlabeled_batch_size": 32, "threshold": 0.6,
}
LEDGER_FIELDS = ("source", "target", "round", "confidence", "weight", "bucket")

__all__ = [
    "StrategyContract", "check_strategy", "tiny_run", "tiny_options", "only_plugins",
    "check_record", "check_selection", "check_leak", "check_determinism", "leak_difference", "labels_permuted",
    "permute_labels", "one_class_labels", "LABEL_CHANGES",
    "TinyRun", "SelectCall", "HookCall", "Evidence", "LeakProbe", "judged_tiny_run",
    "TINY_DATA", "TINY_LABELS", "TINY_SPLIT", "TINY_OPTIONS",
]


@dataclass
class SelectCall:
    """One ``select``: what it was offered and what it returned; and what a copy of the
    strategy returned, in the same state and with the same randomness, when offered the same
    candidates in another order (``shuffled``, ``shuffled_chosen``; ``shuffled_error`` if it raised)."""

    round: int
    candidates: torch.Tensor
    chosen: torch.Tensor
    shuffled: torch.Tensor | None = None
    shuffled_chosen: torch.Tensor | None = None
    shuffled_error: str | None = None


@dataclass
class HookCall:
    """One call of a hook: ``select``, ``label`` or ``weight`` in a round, or ``loss`` at a step; where
    the run was and what the hook returned (the chosen ids; the labels' ids, targets, confidence and
    source; the weights; the loss's value and its pseudo-labels' ids, targets, confidence and mask)."""

    hook: str
    round: int
    step: int
    returned: tuple[Any, ...]

    def where(self) -> str:
        return (f"the loss of step {self.step} (round {self.round})" if self.hook == "loss"
                else f"the {self.hook} of round {self.round}")

    def same(self, other: HookCall) -> bool:
        return (self.hook, self.round, self.step, len(self.returned)) == (
            other.hook, other.round, other.step, len(other.returned)) and all(
            _equal(a, b) for a, b in zip(self.returned, other.returned))


@dataclass
class TinyRun:
    """A finished tiny run with what the spies saw: the ``select`` calls (``selects``) and every call of
    the four hooks (``calls``), of each part of a composition."""

    job: Run
    record: dict[str, Any]
    selects: list[SelectCall] = field(default_factory=list)
    calls: list[HookCall] = field(default_factory=list)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return type(a) is type(b) and a == b


def _copy(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


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


def tiny_options(name: str, registry: Registry | None = None, **overrides: Any) -> dict[str, Any]:
    """The tiny-run options (``TINY_OPTIONS``) that strategy ``name`` has, then ``overrides``, all of
    them: an option the strategy does not have is its ``OptionError`` when the run starts."""
    accepted = option_names(name, registry)
    return {**{k: v for k, v in TINY_OPTIONS.items() if k in accepted}, **overrides}


SHUFFLE_SEED = 20_240_601
"""Seeds the order in which a copy of the strategy is offered the candidates (plus the round)."""


def _shuffled_select(strategy: Strategy, ctx: Context, candidates: torch.Tensor) -> SelectCall:
    """What a copy of ``strategy`` selects from ``candidates`` offered in another order, with the
    run's randomness as it is now (restored afterwards, so the run itself does not change)."""
    call = SelectCall(ctx.round, candidates.clone(), candidates[:0])
    if candidates.numel() < 2:
        return call
    try:
        twin = copy.deepcopy(strategy)
    except Exception:  # a strategy that holds what cannot be copied is not probed
        return call
    vars(twin).pop("select", None)  # the probe: the twin runs its own select
    order = torch.randperm(candidates.numel(), generator=torch.Generator().manual_seed(SHUFFLE_SEED + ctx.round))
    call.shuffled = candidates[order.to(candidates.device)]
    generator, global_rng = ctx.generator.get_state(), torch.get_rng_state()
    try:
        call.shuffled_chosen = _copy(twin.select(ctx, call.shuffled))
    except Exception as exc:
        call.shuffled_error = f"{type(exc).__name__}: {exc}"
    finally:
        ctx.generator.set_state(generator)
        torch.set_rng_state(global_rng)
    return call


def _tracer(calls: list[HookCall]) -> Trace:
    """An engine trace (:attr:`sslzoo._engine.run.Run.trace`) that appends each hook's call to ``calls``."""

    def trace(hook: str, ctx: Context, returned: tuple[Any, ...]) -> None:
        calls.append(HookCall(hook, ctx.round, ctx.step, returned))

    return trace


def _probe_selects(strategy: Strategy, result: TinyRun) -> None:
    """Ask a copy of each part of ``strategy`` what it selects from its candidates shuffled, at every
    ``select`` (:class:`SelectCall`, into ``result``)."""
    for part in strategy.parts():
        select = part.select

        def probed(ctx: Context, candidates: torch.Tensor, part: Strategy = part,
                   select: Callable[[Context, torch.Tensor], torch.Tensor] = select) -> torch.Tensor:
            probe = _shuffled_select(part, ctx, candidates)
            chosen = select(ctx, candidates)
            probe.chosen = _copy(chosen)
            result.selects.append(probe)
            return chosen

        vars(part)["select"] = probed  # an instance attribute shadows the method


def tiny_run(name: str, seed: int = 0, registry: Registry | None = None, **overrides: Any) -> TinyRun:
    """Run ``name`` on a tiny two-moons problem, in this process, tracing its four hooks.

    ``overrides`` are strategy options, on top of the tiny ones (:func:`tiny_options`). Each
    ``select`` is also asked of a copy of the strategy with the candidates shuffled
    (:class:`SelectCall`), for :func:`check_selection`.
    """
    registry = registry or default_registry()
    options = tiny_options(name, registry, **overrides)
    strategy = create_strategy(name, registry, **options)
    spec = RunSpec(strategy=name, dataset="moons", labels=TINY_LABELS, seed=seed, device="cpu",
                   split=TINY_SPLIT, options=options, dataset_options=dict(TINY_DATA))
    job = Run(spec, strategy, registry)
    result = TinyRun(job, {})
    _probe_selects(strategy, result)
    job.trace = _tracer(result.calls)
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


def _positions(call: SelectCall) -> bool:
    """Whether ``call`` looks like a ``select`` that returns positions in its candidates, not ids:
    offered the candidates in another order it returned other ids, yet read as positions into the
    candidates each was offered, both selections point at the same samples."""
    chosen, other, shuffled, n = call.chosen, call.shuffled_chosen, call.shuffled, call.candidates.numel()
    if other is None or shuffled is None or chosen.dim() != 1 or other.dim() != 1 or chosen.numel() == 0:
        return False
    if set(chosen.tolist()) == set(other.tolist()):
        return False
    if not all(0 <= int(p) < n for p in torch.cat([chosen, other]).tolist()):
        return False
    return set(call.candidates[chosen].tolist()) == set(shuffled[other].tolist())


def check_selection(run: TinyRun) -> None:
    """``select`` returns unique global ids from the pool, not positions among its
    candidates (a copy offered them shuffled must not point at the same samples by position);
    the budget holds."""
    for call in run.selects:
        chosen = call.chosen
        assert chosen.dtype == torch.long and chosen.dim() == 1, f"round {call.round}: not 1-D int64 ids"
        assert chosen.unique().numel() == chosen.numel(), f"round {call.round}: duplicate ids"
        assert torch.isin(chosen, call.candidates).all(), f"round {call.round}: ids outside the pool"
        assert call.shuffled_error is None, (f"round {call.round}: select failed when offered the same candidates "
                                             f"in another order: {call.shuffled_error}")
        assert not _positions(call), (
            f"round {call.round}: select returns positions in its candidates, not global ids: offered the same "
            f"candidates in another order it returned other ids, which as positions point at the same samples "
            f"(return candidates[positions])")
    budget = run.record["options"].get("budget")
    if budget is not None:
        assert run.record["oracle_labels"] <= budget, "more oracle labels than the budget"
    query_size = run.record["options"].get("query_size")
    labels = [e["labels"] for e in run.record["curve"]]
    if query_size is not None:
        assert all(0 <= b - a <= query_size for a, b in zip(labels, labels[1:])), labels


def permute_labels(y: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """A copy of ``y`` whose labels at ``ids`` are permuted among those ids, changing as many of them as a
    permutation can: the ids sorted by label take the labels rotated by the largest class's count."""
    y = y.clone()
    labels = y[ids]
    if labels.numel():
        order = torch.argsort(labels, stable=True)
        y[ids[order]] = labels[order].roll(int(torch.bincount(labels).max()))
    return y


def one_class_labels(y: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """A copy of ``y`` whose labels at ``ids`` are all one class, the one least frequent among them: the
    class distribution of those ids changes as much as it can (a permutation keeps it)."""
    y = y.clone()
    labels = y[ids]
    if labels.numel():
        counts = torch.bincount(labels, minlength=int(y.max()) + 1)
        y[ids] = int(torch.argmin(torch.where(counts > 0, counts, counts.new_full((), labels.numel() + 1))))
    return y


LABEL_CHANGES: tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ...] = (permute_labels, one_class_labels)
"""How the leak check changes the hidden labels, one second run each: permuted among themselves (as
many labels changed as a permutation can), and all of one class (the class distribution changed)."""


@contextlib.contextmanager
def labels_permuted(dataset: type[Dataset], ids: torch.Tensor,
                    change: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = permute_labels) -> Iterator[None]:
    """Within the block, ``dataset.load`` gives training labels changed at ``ids`` by ``change`` (default:
    :func:`permute_labels`), everything else unchanged. The class itself is patched, so every way sslzoo
    loads it (the run, the registry, the API, the class) gives the changed labels."""
    own = dataset.__dict__.get("load")
    original = dataset.load

    def load(self: Dataset, seed: int) -> Arrays:
        arrays = original(self, seed)
        return dataclasses.replace(arrays, y_train=change(arrays.y_train, ids))

    dataset.load = load  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del dataset.load
        else:
            dataset.load = own  # type: ignore[method-assign]


@dataclass
class Evidence:
    """What a run's strategy did, as seen inside its learner: every hook's call (``calls``), the
    ledger's fields, the trained model's weights, and the run's record."""

    record: dict[str, Any]
    calls: list[HookCall]
    ledger: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor]

    @classmethod
    def of(cls, run: TinyRun) -> Evidence:
        """The evidence of a tiny run made in this process."""
        return cls(run.record, run.calls, {name: getattr(run.job.data.ledger, name) for name in LEDGER_FIELDS},
                   run.job.learner.model.state_dict())


@dataclass
class LeakProbe:
    """The leak check's :class:`~sslzoo._engine.learner.Probe`: traces the hooks in the learner and
    returns the :class:`Evidence` but the record. With ``change``, the dataset's class in the learner's
    process gives the training labels changed at ``hidden`` as the judge's data has them, so that a
    strategy that loads the data again through sslzoo sees the change too."""

    change: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    hidden: torch.Tensor | None = None
    calls: list[HookCall] = field(default_factory=list)
    changed: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # held for the learner's life

    def before(self, run: Run) -> None:
        run.trace = _tracer(self.calls)
        if self.change is not None and self.hidden is not None:
            self.changed.enter_context(labels_permuted(type(run.dataset), self.hidden, self.change))

    def after(self, run: Run) -> Evidence:
        return Evidence({}, self.calls, {name: getattr(run.data.ledger, name) for name in LEDGER_FIELDS},
                        run.learner.model.state_dict())


def judged_tiny_run(name: str, seed: int = 0, registry: Registry | None = None, probe: LeakProbe | None = None,
                    **overrides: Any) -> Evidence:
    """:func:`tiny_run` as ``sslzoo bench`` runs it: the judge here, the learner in a fresh process (its
    strategy's plugin must be importable there: a module, or an instance of a top-level class), with
    ``probe`` (default: a plain :class:`LeakProbe`) tracing it there."""
    registry = registry or default_registry()
    options = tiny_options(name, registry, **overrides)
    spec = RunSpec(strategy=name, dataset="moons", labels=TINY_LABELS, seed=seed, device="cpu",
                   split=TINY_SPLIT, options=options, dataset_options=dict(TINY_DATA))
    record, evidence = probed_run(spec, registry, probe or LeakProbe())
    evidence.record = record
    return evidence


def leak_difference(first: Evidence | TinyRun, second: Evidence | TinyRun) -> str | None:
    """The first thing the strategy did differently in ``second`` than in ``first`` (None: nothing):
    a ``select``, ``label`` or ``weight`` call, the ledger, the trained model, the curve's test
    accuracies and oracle labels, or the termination. The judge's pseudo-label accuracy, which
    compares with the hidden truth, is not looked at."""
    first, second = (Evidence.of(run) if isinstance(run, TinyRun) else run for run in (first, second))
    for a, b in zip(first.calls, second.calls):
        if not a.same(b):
            return (f"{a.where()} returned something else" if a.where() == b.where()
                    else f"the hooks were called in another order ({a.where()} became {b.where()})")
    if len(first.calls) != len(second.calls):
        return f"its hooks were called {len(first.calls)} times, then {len(second.calls)} times"
    for name in LEDGER_FIELDS:
        mine, theirs = first.ledger[name], second.ledger[name]
        if not torch.equal(mine, theirs):
            ids = torch.nonzero(mine != theirs).flatten()
            return f"the ledger's {name} differs at {ids.numel()} ids (e.g. id {int(ids[0])})"
    for key, value in first.weights.items():
        if key not in second.weights or not _equal(value, second.weights[key]):
            return f"the trained model differs ({key})"

    def curve(evidence: Evidence) -> list[tuple[Any, ...]]:
        return [(e["round"], e["epoch"], e["labels"], e["test_accuracy"]) for e in evidence.record["curve"]]

    if curve(first) != curve(second):
        return "the curve's test accuracies or oracle labels differ"
    if first.record["termination"] != second.record["termination"]:
        return f"it stopped for another reason ({second.record['termination']!r})"
    return None


def check_leak(run: TinyRun) -> Evidence:
    """No hidden label reaches the strategy: run it again, same seed, options and registry, with the
    true labels of the training ids it never had from the oracle (neither starting labels nor ever
    answered) changed, once permuted among themselves and once all of one class (so that a strategy
    reading only the hidden class distribution is caught too, see :data:`LABEL_CHANGES`); each time it
    must select, label and weigh exactly as before. Every run of the check is judged as ``sslzoo bench``
    judges it, its learner in a fresh process (:func:`judged_tiny_run`), so no run sees another's
    memory; the changed labels are the judge's data, and what the dataset's class loads in the learner.
    A strategy that errors in a changed run fails too. Returns the evidence of the last changed run."""
    name, registry, options = run.record["strategy"], run.job.registry, run.job.spec.options
    seed = run.record["seed"]
    first = judged_tiny_run(name, seed, registry, **options)
    hidden = torch.nonzero(first.ledger["source"] != ORACLE).flatten()
    again = first
    for change in LABEL_CHANGES:
        how = "permuted" if change is permute_labels else "all set to one class"
        try:
            with labels_permuted(type(run.job.dataset), hidden, change):
                again = judged_tiny_run(name, seed, registry, LeakProbe(change, hidden), **options)
        except Exception as exc:
            raise AssertionError(f"strategy {name!r} failed once the hidden labels of the {hidden.numel()} "
                                 f"never-queried training ids were {how}: {type(exc).__name__}: {exc}") from exc
        difference = leak_difference(first, again)
        assert difference is None, (f"hidden labels leak into strategy {name!r}: with the true labels of the "
                                    f"{hidden.numel()} never-queried training ids {how}, {difference}")
    return again


def check_determinism(run: TinyRun, registry: Registry | None = None) -> None:
    """A second run with the same seed, options and registry (``run``'s, unless ``registry`` is
    given) gives the same record, wall time aside."""
    registry = registry or run.job.registry
    again = tiny_run(run.record["strategy"], run.record["seed"], registry, **run.job.spec.options).record
    first = {k: v for k, v in run.record.items() if k != "wall_seconds"}
    second = {k: v for k, v in again.items() if k != "wall_seconds"}
    differ = sorted(k for k in first.keys() | second.keys() if first.get(k) != second.get(k))
    assert not differ, (f"two runs with the same seed and options gave different records (they differ in "
                        f"{', '.join(differ)})")


def check_strategy(name: str, registry: Registry | None = None, **options: Any) -> None:
    """Run the whole contract on strategy ``name`` with strategy ``options`` (on top of the tiny
    ones); raises AssertionError on the first breach."""
    run = tiny_run(name, registry=registry, **options)
    check_record(run)
    check_selection(run)
    check_leak(run)
    check_determinism(run)


class StrategyContract:
    """Subclass as ``TestSomething`` and set ``strategy`` (and ``options``, strategy options on top of
    the tiny ones): pytest then runs the contract on it."""

    strategy: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}

    def _run(self) -> TinyRun:
        assert self.strategy, "set the class attribute strategy to the registered name"
        return tiny_run(self.strategy, **self.options)

    def test_tiny_run_gives_a_valid_record(self) -> None:
        check_record(self._run())

    def test_select_returns_unique_pool_ids_within_budget(self) -> None:
        check_selection(self._run())

    def test_hidden_labels_do_not_leak(self) -> None:
        check_leak(self._run())

    def test_same_seed_gives_the_same_record(self) -> None:
        check_determinism(self._run())


# -- deprecated aliases: each works, with a DeprecationWarning, for one minor version of the plugin API --

_DEPRECATED = {"check_oracle": Alias("check_leak", check_leak, since="1.0")}


def __getattr__(name: str) -> Any:
    """A deprecated alias's object, with a ``DeprecationWarning`` naming its new name."""
    return deprecated_alias(__name__, name, _DEPRECATED)
