"""Every registered strategy, and compositions of them, pass the strategy contract."""

from __future__ import annotations

import gc
import inspect

import pytest
import torch

import sslzoo
from sslzoo import ORACLE, Labels, Strategy
from sslzoo.engine import Run
from sslzoo.plugins import make_plugins
from sslzoo.registry import Registry
from sslzoo.testing import (
    TINY_DATA,
    StrategyContract,
    check_determinism,
    check_leak,
    check_record,
    check_selection,
    check_strategy,
    labels_permuted,
    leak_difference,
    one_class_labels,
    permute_labels,
    tiny_run,
)
from tests.plugin_helpers import registry_with

BUILT_IN = Registry(make_plugins(load="")).strategies.names()
COMPOSED = ["least_confidence+self_training", "entropy+pseudo_label", "bald+self_training", "margin>self_training"]


@pytest.mark.parametrize("name", BUILT_IN + COMPOSED)
def test_strategy_honours_the_contract(name):
    check_strategy(name)


class TestContractClassForPluginAuthors(StrategyContract):
    strategy = "margin"


def _engine_truth(ctx) -> torch.Tensor:
    """The run's truth, found by walking up the call stack to the engine (what no strategy may do)."""
    frame = inspect.currentframe()
    while not isinstance(frame.f_locals.get("self"), Run):
        frame = frame.f_back
    return frame.f_locals["self"].judge._oracle.reveal(torch.arange(ctx.x.shape[0]))


def _stored_targets(ctx) -> torch.Tensor:
    """The run's truth, dug out of the engine's private storage through the garbage collector."""
    job = next(o for o in gc.get_objects() if isinstance(o, Run) and vars(o).get("ctx") is ctx)
    return next(value for value in vars(job.judge._oracle).values() if isinstance(value, torch.Tensor))


def _reloaded_targets(ctx) -> torch.Tensor:
    """The truth, loaded again through sslzoo's API."""
    return sslzoo.create_dataset("moons", **TINY_DATA).load(ctx.seed).y_train


class QueriesOneClass(Strategy):
    """Queries the 5 lowest pool ids of class 1, as a truth source says: a cheat."""

    name = "queries_one_class"
    family = "al"
    truth = staticmethod(_engine_truth)

    def stop(self, ctx):
        return None if ctx.round < 3 else "done"

    def query_count(self, ctx, n_candidates):
        return 5

    def select(self, ctx, candidates):
        return candidates[self.truth(ctx)[candidates] == 1][:5]


class PseudoLabelsWithTheTruth(Strategy):
    """Pseudo-labels 20 pool ids a round with their true labels, from a truth source: a cheat."""

    name = "pseudo_labels_with_the_truth"
    family = "ssl"

    def stop(self, ctx):
        return None if ctx.round < 3 else "done"

    def select(self, ctx, candidates):
        return candidates[:20]

    def label(self, ctx, ids):
        return Labels.pseudo(ids, self.truth(ctx)[ids], torch.ones(ids.numel()))


class LabelReadsBeyondItsQueries(Strategy):
    """Selects 25 pool ids, asks the oracle for 5 and reads the oracle handle's private storage
    for the other 20, which become pseudo-labels: a cheat."""

    name = "label_reads_beyond_its_queries"
    family = "hybrid"

    def stop(self, ctx):
        return None if ctx.round < 3 else "done"

    def query_count(self, ctx, n_candidates):
        return 5

    def select(self, ctx, candidates):
        return candidates[:25]

    def label(self, ctx, ids):
        handle = ctx.oracle
        truth = dict(zip(handle._ids.tolist(), handle._truth.tolist()))
        rest = ids[5:]
        return handle(ids[:5]).cat(Labels.pseudo(rest, torch.tensor([truth[i] for i in rest.tolist()]),
                                                 torch.ones(rest.numel())))


@pytest.mark.parametrize("cheat", [
    QueriesOneClass,
    type("SelectsByStoredTargets", (QueriesOneClass,), {"truth": staticmethod(_stored_targets)}),
    type("SelectsByReloadedLabels", (QueriesOneClass,), {"truth": staticmethod(_reloaded_targets)}),
    type("PseudoLabelsFromStoredTargets", (PseudoLabelsWithTheTruth,), {"truth": staticmethod(_stored_targets)}),
    type("PseudoLabelsFromReloadedLabels", (PseudoLabelsWithTheTruth,), {"truth": staticmethod(_reloaded_targets)}),
    LabelReadsBeyondItsQueries,
], ids=lambda cheat: cheat.__name__)
def test_leak_check_catches_a_strategy_that_reads_hidden_labels(cheat):
    registry = registry_with(cheat)
    run = tiny_run(cheat.name, registry=registry)
    check_record(run)
    check_selection(run)
    check_determinism(run, registry)  # the cheat passes every other check of the contract
    with pytest.raises(AssertionError, match=f"hidden labels leak into strategy '{cheat.name}': with the true "
                                             f"labels of the \\d+ never-queried training ids permuted, the "
                                             f"(select|label) of round 1 returned something else"):
        check_leak(run)


def test_the_whole_contract_includes_the_leak_check():
    with pytest.raises(AssertionError, match="hidden labels leak into strategy 'label_reads_beyond_its_queries'"):
        check_strategy(LabelReadsBeyondItsQueries.name, registry_with(LabelReadsBeyondItsQueries))
    assert "test_hidden_labels_do_not_leak" in dir(StrategyContract)


def test_leak_check_fails_a_strategy_that_errors_once_hidden_labels_change():
    class Fragile(QueriesOneClass):
        """Raises when the labels it reads are not those of the first run."""

        name = "fragile"
        seen: dict[int, torch.Tensor] = {}

        def select(self, ctx, candidates):
            truth = self.truth(ctx)[candidates.sort().values]  # the same for the copy offered them shuffled
            if not torch.equal(self.seen.setdefault(ctx.round, truth), truth):
                raise RuntimeError("the labels changed")
            return candidates[:5]

    run = tiny_run("fragile", registry=registry_with(Fragile))
    with pytest.raises(AssertionError, match="'fragile' failed once the hidden labels of the \\d+ never-queried "
                                             "training ids were permuted: RuntimeError: the labels changed"):
        check_leak(run)


def test_leak_check_ignores_the_engines_pseudo_label_accuracy():
    """margin>self_training's pseudo-labels do not depend on the hidden labels, but their accuracy does."""
    first = tiny_run("margin>self_training")
    second = check_leak(first)
    assert first.record["pseudo"]["count"] == second.record["pseudo"]["count"] > 0
    assert first.record["pseudo"]["accuracy"] != second.record["pseudo"]["accuracy"]


class QueriesByTheClassPrior(QueriesOneClass):
    """Reads only the pool's class counts from a truth source, and queries its lowest ids when class 0
    is the commoner, else its highest: a cheat that no permutation of the hidden labels shows."""

    name = "queries_by_the_class_prior"

    def select(self, ctx, candidates):
        counts = torch.bincount(self.truth(ctx)[candidates], minlength=2)
        ordered = candidates.sort().values
        return ordered[:5] if counts[0] >= counts[1] else ordered[-5:]


def test_leak_check_catches_a_strategy_that_reads_only_the_hidden_class_distribution():
    registry = registry_with(QueriesByTheClassPrior)
    run = tiny_run(QueriesByTheClassPrior.name, registry=registry)
    hidden = torch.nonzero(run.job.data.ledger.source != ORACLE).flatten()
    with labels_permuted(type(run.job.dataset), hidden):  # a permutation keeps the class counts
        assert leak_difference(run, tiny_run(QueriesByTheClassPrior.name, registry=registry)) is None
    with pytest.raises(AssertionError, match="hidden labels leak into strategy 'queries_by_the_class_prior': with "
                                             "the true labels of the \\d+ never-queried training ids all set to "
                                             "one class, the select of round 1 returned something else"):
        check_leak(run)


def test_one_class_labels_give_every_hidden_id_the_class_least_frequent_among_them():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    ids = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])  # classes 3 x 0, 2 x 1, 3 x 2 among them
    changed = one_class_labels(y, ids)
    assert changed[ids].tolist() == [1] * 8 and torch.equal(changed[8:], y[8:])


def test_permuted_labels_keep_the_class_counts_and_change_all_they_can():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    ids = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])  # classes 3 x 0, 2 x 1, 3 x 2 among them
    permuted = permute_labels(y, ids)
    assert torch.equal(permuted[8:], y[8:]) and torch.equal(y, torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 0]))
    assert torch.equal(permuted[ids].bincount(), y[ids].bincount())
    assert bool((permuted[ids] != y[ids]).all())
    skewed = torch.tensor([0, 0, 0, 0, 1])
    assert int((permute_labels(skewed, torch.arange(5)) != skewed).sum()) == 2  # the most a permutation can change


class TestTheContractTakesStrategyOptions(StrategyContract):
    strategy = "margin"
    options = {"query_size": 3, "budget": 16}


def test_the_contract_runs_with_the_options_it_is_given():
    run = tiny_run("margin", query_size=3, budget=16)
    assert [e["labels"] for e in run.record["curve"]] == [10, 13, 16]
    again = check_leak(run)
    assert again.record["options"] == run.record["options"]
    check_determinism(run)  # reruns with query_size=3: the same record


def test_determinism_fails_only_when_a_rerun_with_the_same_options_differs():
    class Drifting(Strategy):
        """Selects a different id each time it is instantiated: not reproducible under its seed."""

        name = "drifting"
        family = "ssl"
        made = 0

        def __init__(self, **options):
            super().__init__(**options)
            Drifting.made += 1

        def stop(self, ctx):
            return None if ctx.round < 2 else "done"

        def select(self, ctx, candidates):
            return candidates[Drifting.made:Drifting.made + 1]

        def label(self, ctx, ids):
            return Labels.pseudo(ids, torch.zeros_like(ids), torch.ones(ids.numel()))

    registry = registry_with(Drifting)
    run = tiny_run("drifting", registry=registry, epochs=1)
    with pytest.raises(AssertionError, match="two runs with the same seed and options gave different records "
                                             r"\(they differ in .*pseudo"):
        check_determinism(run)


def test_an_option_the_strategy_does_not_have_is_an_error_not_skipped():
    with pytest.raises(sslzoo.OptionError, match="strategy 'margin' has no option 'embeding'"):
        tiny_run("margin", embeding="probs")


class ReturnsPositions(sslzoo.ActiveStrategy):
    """Returns the positions of the top-k margin scores among its candidates: the classic slip."""

    name = "returns_positions"

    def select(self, ctx, pool):
        k = self.query_count(ctx, pool.numel())
        return sslzoo.scores.margin_score(ctx.predict(pool)).topk(k).indices


def test_the_contract_catches_positions_that_happen_to_be_pool_ids():
    run = tiny_run("returns_positions", registry=registry_with(ReturnsPositions), budget=15)  # one round
    (call,) = run.selects
    assert torch.isin(call.chosen, call.candidates).all()  # the engine's own check cannot tell
    with pytest.raises(AssertionError, match="round 1: select returns positions in its candidates, not global ids"):
        check_selection(run)


@pytest.mark.parametrize("name", ["margin", "random", "bald", "least_confidence+self_training"])
def test_order_dependent_or_random_strategies_pass_the_positions_check(name):
    run = tiny_run(name)
    check_selection(run)
    assert all(call.shuffled is not None and call.shuffled_chosen is not None for call in run.selects)


def test_the_shuffled_probe_leaves_the_run_as_it_was():
    """The probe's select runs on a copy, with the random generators restored: a stateful strategy
    (self-training's random draws) gives the record it gives without it."""
    probed = tiny_run("self_training", criterion="random", sample_rate=0.2)
    job = Run(probed.job.spec, sslzoo.create_strategy("self_training", **probed.job.spec.options))
    assert {k: v for k, v in job.execute().items() if k != "wall_seconds"} == \
        {k: v for k, v in probed.record.items() if k != "wall_seconds"}
