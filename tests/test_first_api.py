"""Strategies written for the first plugin API (0.x) beside Plugin API 1.0: a round-level one whose
``select`` tests ``ctx.phase`` runs through the deprecated ``ctx.phase``; a per-step one (its
``loss(ctx, labeled, unlabeled)``, ``transform``, ``unlabeled_batch_size``) is left out with a
one-line warning naming the migration page, and everything else keeps working."""

from __future__ import annotations

import types
import warnings

import pytest

import sslzoo
from sslzoo._contract.context import Context
from sslzoo._contract.plugin_api import MIGRATION_PAGE, PLUGIN_API, fits
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo.errors import PluginWarning
from tests.plugin_helpers import run_here


class FirstRoundQueries(sslzoo.ActiveStrategy):
    """A 0.x active learner: the lowest pool ids, asked for in the round phase only."""

    name = "first_round_queries"

    def select(self, ctx, candidates):
        if ctx.phase != "round":
            return candidates[:0]
        return candidates[:self.query_count(ctx, candidates.numel())]


class FirstStepPseudo(sslzoo.ArgmaxPseudoLabeler):
    """A 0.x per-step pseudo-labeler: the step phase's select, label and loss."""

    name = "first_step_pseudo"

    def unlabeled_batch_size(self):
        return 16

    def select(self, ctx, candidates):
        return candidates if ctx.phase == "step" else candidates[:0]

    def loss(self, ctx, labeled, unlabeled):
        raise AssertionError("a 0.x loss is never called")


def _registry() -> tuple[Registry, list[str]]:
    plugin = types.ModuleType("first_api_plugin")

    @sslzoo.hookimpl
    def register_strategies(register):
        register(FirstRoundQueries)
        register(FirstStepPseudo)

    plugin.register_strategies = register_strategies
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = Registry(make_plugins(load="", extra=(plugin,)))
    return registry, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def test_a_per_step_strategy_of_the_first_api_is_left_out_with_one_line_naming_the_migration_page():
    registry, said = _registry()
    assert "first_step_pseudo" not in registry.strategies
    assert said == [f"plugin first_api_plugin: strategy 'first_step_pseudo' is not registered: it is written for "
                    f"the first plugin API (unlabeled_batch_size(), loss(ctx, labeled, unlabeled)); see "
                    f"{MIGRATION_PAGE}"]
    (record,) = run_here("margin", "moons", labels=6, options={"epochs": 2, "budget": 8, "query_size": 2},
                           registry=registry)
    assert record["oracle_labels"] == 8


def test_a_round_strategy_testing_ctx_phase_runs_through_the_deprecated_phase():
    registry, _ = _registry()
    with pytest.warns(DeprecationWarning, match=f"ctx.phase is deprecated.*{MIGRATION_PAGE}"):
        (record,) = run_here("first_round_queries", "moons", labels=6,
                               options={"epochs": 2, "budget": 10, "query_size": 2}, registry=registry)
    assert [e["labels"] for e in record["curve"]] == [6, 8, 10]


def test_the_deprecated_phase_is_gone_from_plugin_api_1_1():
    assert hasattr(Context, "phase") == fits("<1.1", PLUGIN_API)
