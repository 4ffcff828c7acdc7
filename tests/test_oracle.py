"""The sealed oracle: the truth stays with the engine; ``label`` asks only for its own ids, within
``query_count``; every other way of asking fails with an error that says what is allowed."""

from __future__ import annotations

import types

import pytest
import torch

from sslzoo import Labels, Strategy, run
from sslzoo._contract.labels import ORACLE
from sslzoo._contract.strategy import EpochPlan
from sslzoo.errors import OracleError, PluginError
from tests.plugin_helpers import IN_PROCESS, registry_with

N_TRAIN = 60
QUERIES = 3


class Asking(Strategy):
    """Selects the first 5 pool ids in round 1 and queries 3 of them; subclasses change ``label``."""

    name = "asking"
    family = "al"

    def stop(self, ctx):
        return None if ctx.round < 2 else "done"

    def query_count(self, ctx, n_candidates):
        return QUERIES

    def select(self, ctx, candidates):
        return candidates[:5]

    def label(self, ctx, ids):
        return ctx.oracle(ids[:QUERIES]).cat(Labels.pseudo(ids[QUERIES:], ids[QUERIES:] % 2, torch.ones(2)))


def asking(name: str, **hooks) -> type[Strategy]:
    return type(name, (Asking,), {"name": name, **hooks})


def _run(strategy: type[Strategy], **options):
    registry = registry_with(strategy)
    return run(strategy.name, "moons", labels=10, registry=registry, options={"epochs": 1, **options},
               dataset_options={"n_train": N_TRAIN, "n_test": 50}, executor=IN_PROCESS)[0]


def test_label_may_ask_for_query_count_of_its_own_ids():
    record = _run(Asking)
    assert [e["labels"] for e in record["curve"]] == [10, 10 + QUERIES]
    assert [e["pseudo_labels"] for e in record["curve"]] == [0, 2]


@pytest.mark.parametrize(("label", "error", "message"), [
    (lambda self, ctx, ids: ctx.oracle(ids[:4]),
     OracleError,
     r"'over_asking' .*, round 1: label asked the oracle for 4 labels; its query_count allows 3 this round"),
    (lambda self, ctx, ids: ctx.oracle(torch.cat([ids[:1], ids[:1] + 1000])),
     OracleError, r"'foreign_ids' .*, round 1: label asked the oracle about ids that were not passed to this label "
                  r"call \(1 of them, e\.g\. id \d+\); it may ask only about the ids it is labeling"),
    (lambda self, ctx, ids: ctx.oracle(ids[:2]).cat(Labels.pseudo(ids[2:], ids[2:] % 2, torch.ones(3))),
     PluginError, r"'under_asking' .*, round 1: select returned 5 ids and label asked the oracle for 2 of them; "
                  r"its query_count allows exactly 3"),
    (lambda self, ctx, ids: (lambda t: Labels.pseudo(ids, torch.cat([t.targets, ids[3:] % 2]), torch.ones(5)))(
        ctx.oracle(ids[:3])),
     PluginError, r"'copying' .*: label returned 0 labels marked as oracle labels for the 3 ids the oracle answered"),
    (lambda self, ctx, ids: ctx.oracle(ids[:3]).cat(
        Labels(ids[3:], ids[3:] % 2, torch.ones(2), torch.full((2,), ORACLE, dtype=torch.int8))),
     PluginError, r"'forging' .*: label returned 5 labels marked as oracle labels for the 3 ids the oracle answered"),
    (lambda self, ctx, ids: (lambda t: Labels(t.ids, 1 - t.targets, t.confidence, t.source))(ctx.oracle(ids[:3])).cat(
        Labels.pseudo(ids[3:], ids[3:] % 2, torch.ones(2))),
     PluginError, r"'changing' .*: label changed 3 of the oracle's answers"),
], ids=["over_asking", "foreign_ids", "under_asking", "copying", "forging", "changing"])
def test_label_that_breaks_the_oracle_rules_stops_the_run_saying_what_is_allowed(request, label, error, message):
    name = request.node.callspec.id
    with pytest.raises(error, match=message):
        _run(asking(name, label=label))


def test_asking_the_oracle_in_select_fails():
    def select(self, ctx, candidates):
        ctx.oracle(candidates[:3])
        return candidates[:5]

    with pytest.raises(OracleError, match=r"'peeking' .*, round 1: the oracle was asked outside the label hook: a "
                                          r"strategy may ask for true labels only in label\(\), once per round"):
        _run(asking("peeking", select=select))


def test_a_handle_kept_from_label_answers_nothing_later():
    def label(self, ctx, ids):
        self.kept = ctx.oracle
        return Asking.label(self, ctx, ids)

    def stop(self, ctx):
        if ctx.round == 2:
            self.kept(ctx.pool_ids()[:1])
        return Asking.stop(self, ctx)

    with pytest.raises(OracleError, match=r"'keeping' .*, round 1: the oracle was asked through a handle kept from "
                                          r"this round's label call after that call returned"):
        _run(asking("keeping", label=label, stop=stop))


def test_a_closed_handle_keeps_no_storage_of_its_answers():
    from sslzoo._contract.oracle import Oracle

    truth = torch.arange(10) % 3
    handle = Oracle(truth).handle(torch.tensor([2, 5, 7]), 3, "round 1")
    assert handle(torch.tensor([5])).targets.tolist() == [2]
    handle.close("closed")
    assert vars(handle)["_answer"] is None  # what answered, holding the truth of the call's ids, is dropped
    assert vars(handle)["_answers"].tolist() == [-1, 2, -1]  # what it answered, and nothing else


def test_asking_the_oracle_in_a_training_step_fails():
    """A step's loss gets no oracle labels: its pseudo-labels go in its StepLoss."""
    def loss(self, ctx, step):
        ctx.oracle(step.unlabeled)
        return Strategy.loss(self, ctx, step)

    strategy = asking("stepping", epoch_plan=lambda self, ctx: EpochPlan(8), loss=loss)
    with pytest.raises(OracleError, match=r"'stepping' .*, round 0: the oracle was asked outside the label hook: a "
                                          r"strategy may ask for true labels only in label\(\), once per round"):
        _run(strategy)


def _reachable_tensors(root: object) -> list[torch.Tensor]:
    """Tensors reachable from ``root`` through attributes, containers, bound methods and closures
    (not through classes, modules or a function's globals, which reach everything)."""
    seen, stack, found = set(), [root], []
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, types.ModuleType, str, bytes, int, float, bool)):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append(obj)
        elif isinstance(obj, dict):
            stack.extend([*obj.keys(), *obj.values()])
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, types.MethodType):
            stack.extend([obj.__self__, obj.__func__])
        elif isinstance(obj, types.FunctionType):
            stack.extend(cell.cell_contents for cell in obj.__closure__ or ())
        if hasattr(obj, "__dict__") and not isinstance(obj, torch.Tensor):
            stack.append(vars(obj))
    return found


def test_nothing_reachable_from_the_context_holds_a_hidden_label():
    """In ``select``, no tensor reachable from the context holds the pool's true labels; in ``label``,
    only the labels of that call's ids (held by its oracle handle)."""
    seen = {}

    def select(self, ctx, candidates):
        seen["select"] = (ctx.pool_ids().clone(), _reachable_tensors(ctx) + _reachable_tensors(ctx.oracle))
        seen["oracle attributes"] = dir(ctx.oracle)
        return candidates[:5]

    def label(self, ctx, ids):
        hidden = ctx.pool_ids()[~torch.isin(ctx.pool_ids(), ids)]
        seen["label"] = (hidden, _reachable_tensors(ctx) + _reachable_tensors(ctx.oracle))
        return Asking.label(self, ctx, ids)

    class Spy(Asking):
        name = "spy"

    Spy.select, Spy.label = select, label
    record = _run(Spy)
    assert record["oracle_labels"] == 10 + QUERIES
    truth = _truth()
    assert not {"reveal", "_targets"} & set(seen.pop("oracle attributes"))
    for hook, (hidden, tensors) in seen.items():
        assert len(tensors) > 10 and hidden.numel() >= N_TRAIN - 10 - 5
        for t in tensors:
            if t.dtype in (torch.int64, torch.int32, torch.int8, torch.uint8) and t.dim() == 1:
                if t.numel() == N_TRAIN:
                    assert not torch.equal(t[hidden].long(), truth[hidden]), f"{hook}: a tensor holds the truth"
                assert not (t.numel() == hidden.numel() and torch.equal(t.long(), truth[hidden])), hook


def _truth() -> torch.Tensor:
    from sslzoo._datasets.moons import make_moons

    return make_moons(N_TRAIN, 0.1, 0)[1]
