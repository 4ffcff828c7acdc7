"""Every registered strategy, and compositions of them, pass the strategy contract."""

from __future__ import annotations

import pytest

from sslzoo.plugins import make_plugins
from sslzoo.registry import Registry
from sslzoo.testing import StrategyContract, check_strategy

BUILT_IN = Registry(make_plugins(load="")).strategies.names()
COMPOSED = ["least_confidence+self_training", "entropy+pseudo_label", "bald+self_training", "margin>self_training"]


@pytest.mark.parametrize("name", BUILT_IN + COMPOSED)
def test_strategy_honours_the_contract(name):
    check_strategy(name)


class TestContractClassForPluginAuthors(StrategyContract):
    strategy = "margin"


def test_contract_catches_a_strategy_that_copies_true_labels_into_pseudo_labels():
    from sslzoo import Labels, Strategy, hookimpl

    class Cheat(Strategy):
        name = "cheat"
        family = "ssl"

        def stop(self, ctx):
            return None if ctx.round < 2 else "done"

        def select(self, ctx, candidates):
            return candidates[:5] if ctx.phase == "round" else candidates[:0]

        def label(self, ctx, ids):
            truth = ctx.oracle(ids)
            return Labels.pseudo(ids, truth.targets, truth.confidence)

    class Plugin:
        @hookimpl
        def register_strategies(self, register):
            register(Cheat)

    with pytest.raises(AssertionError, match="oracle was read"):
        check_strategy("cheat", Registry(make_plugins(load="", extra=(Plugin(),))))
