"""Every registered strategy, and compositions of them, pass the strategy contract."""

from __future__ import annotations

import pytest
import torch

import sslzoo
from sslzoo import Labels, Strategy
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo._engine.run import Run
from sslzoo.testing import (
    StrategyContract,
    check_determinism,
    check_leak,
    check_selection,
    check_strategy,
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


def test_leak_check_ignores_the_engines_pseudo_label_accuracy():
    """margin>self_training's pseudo-labels do not depend on the hidden labels, but their accuracy does."""
    first = tiny_run("margin>self_training")
    second = check_leak(first)
    assert first.record["pseudo"]["count"] == second.record["pseudo"]["count"] > 0
    assert first.record["pseudo"]["accuracy"] != second.record["pseudo"]["accuracy"]


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
