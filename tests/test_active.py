"""Active learning (sslzoo._strategies.active, default_plugins.uncertainty and .mc_dropout): query counts,
budgets, pool exhaustion, options, MC-dropout mechanics, and a real-training comparison."""

from __future__ import annotations

import statistics
import types
from dataclasses import dataclass, field

import pytest
import torch
from torch import nn

import sslzoo
from sslzoo import scores
from sslzoo._contract.context import Context
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._contract.labels import ORACLE, Labels
from sslzoo._contract.ledger import Ledger
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo._engine.run import Run
from sslzoo._strategies import active
from sslzoo._strategies.active import ActiveStrategy, UncertaintyStrategy
from sslzoo.errors import OptionError
from tests.plugin_helpers import run_here

UNCERTAINTY = ("random", "least_confidence", "margin", "entropy")
MC_DROPOUT = ("bald", "mc_entropy", "mc_variation_ratios", "mc_mean_std")
AL_STRATEGIES = UNCERTAINTY + MC_DROPOUT


@pytest.fixture(scope="module", autouse=True)
def _env():
    """No third-party plugins; one CPU thread (tiny models run faster, and steadier, on one)."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSLZOO_LOAD_PLUGINS", "")
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(make_plugins(load=""))


def tiny_run(name: str, registry: Registry, *, n_train: int = 60, labels: int = 4, seed: int = 0,
             model: str | None = None, **options) -> dict:
    """One quick run on two-moons (1 epoch per round): for counting, not for accuracy."""
    return run_here(name, "moons", labels=labels, seed=seed, device="cpu", model=model, registry=registry,
                      options={"epochs": 1, **options}, dataset_options={"n_train": n_train, "n_test": 50})[0]


@dataclass
class Call:
    round: int
    labeled: set[int]
    pool: torch.Tensor
    chosen: torch.Tensor
    query_count: int


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)


@pytest.fixture
def record_select(monkeypatch):
    """Wrap a strategy class's select to record every call and what it returned."""

    def install(name: str, registry: Registry) -> Recorder:
        cls = sslzoo.get_strategy(name, registry)
        original = cls.select
        rec = Recorder()

        def select(self, ctx, candidates):
            labeled = set(ctx.labeled_ids().tolist())
            expected = self.query_count(ctx, candidates.numel())
            chosen = original(self, ctx, candidates)
            rec.calls.append(Call(ctx.round, labeled, candidates.clone(), chosen.clone(), expected))
            return chosen

        monkeypatch.setattr(cls, "select", select)
        return rec

    return install


def check_query(call: Call, k: int) -> None:
    chosen = call.chosen
    assert chosen.dtype == torch.int64 and chosen.dim() == 1
    assert chosen.numel() == k == call.query_count
    assert chosen.unique().numel() == k, "duplicate ids"
    assert torch.isin(chosen, call.pool).all(), "ids not from the pool"
    assert not set(chosen.tolist()) & call.labeled, "ids already labeled"


# -- registration ----------------------------------------------------------------------------------


def test_every_al_strategy_is_registered_with_its_paper(registry):
    assert set(AL_STRATEGIES) <= set(sslzoo.list_strategies(registry=registry))
    for name in AL_STRATEGIES:
        cls = sslzoo.get_strategy(name, registry)
        assert issubclass(cls, ActiveStrategy) and cls.name == name and cls.family == "al"
        assert cls.summary and len(cls.paper) > 40
        plugin = registry.strategies.get(name).plugin.name
        module = "uncertainty" if name in UNCERTAINTY else "mc_dropout"
        assert plugin == f"sslzoo._default_plugins.{module}"
    assert all("Gal" in sslzoo.get_strategy(n, registry).paper for n in MC_DROPOUT)
    assert "Houlsby" in sslzoo.get_strategy("bald", registry).paper


def test_option_defaults_are_the_papers():
    entropy, bald = sslzoo.create_strategy("entropy"), sslzoo.create_strategy("bald")
    assert (entropy.options.query_size, entropy.options.budget, entropy.options.pool_subset) == (10, None, 0)
    assert (bald.options.query_size, bald.options.passes) == (10, 20)
    assert not hasattr(entropy.options, "passes")


@pytest.mark.parametrize("bad", [{"query_size": 0}, {"budget": 0}, {"pool_subset": -1}, {"passes": 0},
                                 {"query_size": "ten"}])
def test_bad_options_name_the_option(bad):
    key = next(iter(bad))
    with pytest.raises(OptionError, match=key):
        sslzoo.create_strategy("bald", **bad)


def test_options_parse_from_strings():
    s = sslzoo.create_strategy("mc_entropy", query_size="5", budget="none", passes="7", pool_subset="100")
    assert (s.options.query_size, s.options.budget, s.options.passes, s.options.pool_subset) == (5, None, 7, 100)


# -- query counts and budgets (every AL strategy) ----------------------------------------------------


@pytest.mark.parametrize("name", AL_STRATEGIES)
def test_each_round_queries_exactly_k_unique_pool_ids_and_meets_the_budget(name, registry, record_select):
    rec = record_select(name, registry)
    record = tiny_run(name, registry, query_size=7, budget=30)  # 4 + 7 + 7 + 7 + 5 = 30
    assert [c.chosen.numel() for c in rec.calls] == [7, 7, 7, 5]
    for call, k in zip(rec.calls, [7, 7, 7, 5]):
        check_query(call, k)
        assert call.pool.numel() == 60 - len(call.labeled)
    assert [c.round for c in rec.calls] == [1, 2, 3, 4], "an AL strategy selects once per round, never per step"
    assert [e["labels"] for e in record["curve"]] == [4, 11, 18, 25, 30]
    assert record["oracle_labels"] == 30 and record["termination"] == "budget"


@pytest.mark.parametrize("name", AL_STRATEGIES)
def test_budget_larger_than_the_pool_ends_with_pool_empty(name, registry, record_select):
    rec = record_select(name, registry)
    record = tiny_run(name, registry, n_train=30, query_size=10, budget=100)
    assert [c.chosen.numel() for c in rec.calls] == [10, 10, 6]
    for call, k in zip(rec.calls, [10, 10, 6]):
        check_query(call, k)
    assert record["termination"] == "pool_empty"
    assert record["oracle_labels"] == 30 and [e["labels"] for e in record["curve"]] == [4, 14, 24, 30]


@pytest.mark.parametrize("name", ["entropy", "bald"])
def test_no_budget_or_query_size_means_ten_rounds_of_ten(name, registry, record_select):
    rec = record_select(name, registry)
    record = tiny_run(name, registry, n_train=200)
    assert [c.chosen.numel() for c in rec.calls] == [10] * 10
    assert record["oracle_labels"] == 4 + 10 * 10 and record["termination"] == "budget"
    assert record["options"]["budget"] is None and record["options"]["query_size"] == 10


def test_budget_equal_to_the_starting_labels_queries_nothing(registry, record_select):
    rec = record_select("entropy", registry)
    record = tiny_run("entropy", registry, budget=4)
    assert rec.calls == [] and record["termination"] == "budget" and len(record["curve"]) == 1


def test_budget_below_the_starting_labels_is_a_clear_error_before_any_training(registry, monkeypatch):
    trained = []
    monkeypatch.setattr(Run, "train_round", lambda self, rnd, curve=None: trained.append(rnd))
    with pytest.raises(OptionError, match=r"budget=3 .* smaller than the 4 starting labels"):
        tiny_run("margin", registry, budget=3)
    with pytest.raises(OptionError, match=r"budget=3 .* smaller than the 4 starting labels"):
        tiny_run("margin>self_training", registry, budget=3)
    assert trained == []


@pytest.mark.parametrize("name", ["least_confidence", "mc_variation_ratios"])
def test_pool_subset_scores_that_many_ids_and_still_queries_k(name, registry, record_select, monkeypatch):
    rec = record_select(name, registry)
    cls = sslzoo.get_strategy(name, registry)
    scored: list[int] = []
    original = cls.score

    def score(self, ctx, ids):
        scored.append(ids.numel())
        assert torch.isin(ids, ctx.pool_ids()).all() and ids.unique().numel() == ids.numel()
        return original(self, ctx, ids)

    monkeypatch.setattr(cls, "score", score)
    record = tiny_run(name, registry, query_size=7, budget=30, pool_subset=12)
    assert scored == [12, 12, 12, 12]
    assert [c.chosen.numel() for c in rec.calls] == [7, 7, 7, 5]
    for call, k in zip(rec.calls, [7, 7, 7, 5]):
        check_query(call, k)
    scored.clear()
    tiny_run(name, registry, query_size=7, budget=18, pool_subset=3)  # a subset never smaller than k
    assert scored == [7, 7]
    assert record["termination"] == "budget"


@pytest.mark.parametrize("name", ["random", "entropy", "bald"])
def test_same_seed_same_queries_other_seed_other_queries(name, registry, record_select):
    rec = record_select(name, registry)
    runs = [tiny_run(name, registry, query_size=5, budget=14, seed=s) for s in (3, 3, 4)]
    picks = [[c.chosen.tolist() for c in rec.calls[i * 2:(i + 1) * 2]] for i in range(3)]
    assert picks[0] == picks[1] and picks[0] != picks[2]
    strip = [{k: v for k, v in r.items() if k != "wall_seconds"} for r in runs]
    assert strip[0] == strip[1]


def test_mc_dropout_needs_a_model_with_dropout(registry):
    with pytest.raises(OptionError, match="makes no dropout call"):
        tiny_run("bald", registry, model="linear", budget=10)
    assert tiny_run("entropy", registry, model="linear", budget=10)["oracle_labels"] == 10


# -- select/score in isolation ----------------------------------------------------------------------


def make_ctx(model: nn.Module, x: torch.Tensor, y: torch.Tensor, labeled: torch.Tensor, seed: int = 0) -> Context:
    ledger = Ledger(y.numel(), x.device)
    ledger.assign(Labels(labeled, y[labeled], torch.ones(labeled.numel()),
                         torch.full((labeled.numel(),), ORACLE, dtype=torch.int8)), torch.ones(labeled.numel()), 0)
    gen = torch.Generator().manual_seed(seed)
    return Context(model=model, x=x, ledger=ledger, generator=gen,
                   num_classes=int(y.max()) + 1, seed=seed, round=1)


def test_beside_a_per_step_pseudo_labeler_the_active_learner_queries_once_per_round_only(registry, record_select):
    """entropy+pseudo_label's training steps draw unlabeled batches and pseudo-label them; the oracle is
    asked only by the active learner's select, once a round."""
    rec = record_select("entropy", registry)
    record = tiny_run("entropy+pseudo_label", registry, query_size=5, budget=14, t1=0.0, t2=1.0,
                      unlabeled_batch_size=16)
    assert [c.round for c in rec.calls] == [1, 2]
    for call in rec.calls:
        check_query(call, 5)
    assert [e["labels"] for e in record["curve"]] == [4, 9, 14] and record["termination"] == "budget"
    assert record["pseudo"]["count"] > 0  # the steps pseudo-labeled, without selecting


def test_query_count_is_min_of_query_size_remaining_budget_and_candidates():
    ctx = make_ctx(nn.Linear(2, 2), torch.randn(50, 2), torch.arange(50) % 2, torch.arange(6))
    s = sslzoo.create_strategy("margin", query_size=10, budget=20)
    assert s.query_count(ctx, 44) == 10
    assert s.query_count(ctx, 3) == 3
    assert sslzoo.create_strategy("margin", query_size=10, budget=11).query_count(ctx, 44) == 5
    assert sslzoo.create_strategy("margin", budget=6).query_count(ctx, 44) == 0
    default = sslzoo.create_strategy("margin", query_size=4)
    assert default.budget(ctx) == 6 + 10 * 4 and default.stop(ctx) is None


def test_uncertainty_select_picks_the_most_uncertain_ids():
    """A fixed model whose logit gap is 10·(1 - |x|): the least confident ids have the largest |x|."""

    class Gap(nn.Module):
        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            gap = 10 * (1 - inp.abs().flatten())
            return torch.stack([gap, torch.zeros_like(gap)], dim=1)

    x = torch.linspace(-1, 1, 21).unsqueeze(1)
    ctx = make_ctx(nn.Sequential(Gap()), x, torch.zeros(21, dtype=torch.long), torch.tensor([10]))
    pool = ctx.pool_ids()
    for name in ("least_confidence", "margin", "entropy"):
        chosen = sslzoo.create_strategy(name, query_size=4).select(ctx, pool)
        assert sorted(chosen.tolist()) == [0, 1, 19, 20], name  # |x| = 1 and 0.9
    picks = sslzoo.create_strategy("random", query_size=4).select(ctx, pool)
    assert picks.numel() == 4 and sorted(picks.tolist()) != [0, 1, 19, 20]


def test_mc_scoring_uses_dropout_only_and_keeps_batch_norm_frozen():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    model.train()
    model(torch.randn(64, 2))  # give BN non-trivial running statistics
    stats = (model[1].running_mean.clone(), model[1].running_var.clone())
    x, y = torch.randn(40, 2), torch.arange(40) % 3
    ctx = make_ctx(model, x, y, torch.arange(3))
    s = sslzoo.create_strategy("bald", passes=8)
    out = s.score(ctx, ctx.pool_ids())
    assert out.shape == (37,) and (out > 0).any(), "dropout passes should disagree somewhere"
    assert torch.equal(model[1].running_mean, stats[0]) and torch.equal(model[1].running_var, stats[1])
    assert model.training and model[3].training  # modes restored afterwards


def test_mc_scoring_is_chunked_and_keeps_id_order(monkeypatch):
    calls: list[int] = []
    c, t = 3, 4

    def predict_mc(ids, passes):
        calls.append(ids.numel())
        assert passes == t
        g = torch.Generator().manual_seed(0)
        table = torch.softmax(torch.randn(100, c, t, generator=g), dim=1)
        return table[ids]

    fake = types.SimpleNamespace(model=nn.Dropout(), num_classes=c, predict_mc=predict_mc)
    ids = torch.randperm(100)[:50]
    s = sslzoo.create_strategy("mc_mean_std", passes=t)
    whole = s.score(fake, ids)
    monkeypatch.setattr(active, "MC_SCORE_ELEMENTS", 12 * c * t)
    calls.clear()
    chunked = s.score(fake, ids)
    assert calls == [12, 12, 12, 12, 2]
    assert torch.equal(whole, chunked)
    assert torch.equal(whole, scores.mean_std(predict_mc(ids, t)))


# -- real training: uncertainty sampling beats random ----------------------------------------------

COMPARISON = {
    "dataset": "moons", "labels": 6, "seeds": 5, "seed": 0, "model": "moons_mlp", "device": "cpu",
    "dataset_options": {"n_train": 500, "n_test": 1000, "noise": 0.1},
    "options": {"query_size": 4, "budget": 30, "epochs": 100, "lr": 0.02, "batch_size": 64,
                "optimizer": "adam", "weight_decay": 0.0, "retrain": "scratch"},
}
MARGIN = 0.03  # measured: random ≈ 0.93, entropy = least_confidence ≈ 0.99, most-confident ≈ 0.84


class MostConfident(UncertaintyStrategy):
    """A deliberately broken active learner: queries the *most* confident ids."""

    name = "broken_most_confident"
    paper = "—"
    summary = "test only"
    uncertainty = staticmethod(lambda p: -scores.entropy(p))


def _mean_accuracy(name: str, registry: Registry) -> float:
    records = run_here(name, registry=registry, **COMPARISON)
    assert all(r["oracle_labels"] == 30 and r["termination"] == "budget" for r in records)
    return statistics.fmean(r["test_accuracy"] for r in records)


@pytest.fixture(scope="module")
def random_accuracy(registry) -> float:
    return _mean_accuracy("random", registry)


@pytest.mark.parametrize("name", ["entropy", "least_confidence"])
def test_uncertainty_sampling_beats_random_at_the_same_budget(name, registry, random_accuracy):
    acc = _mean_accuracy(name, registry)
    print(f"\n{name}: {acc:.4f} vs random {random_accuracy:.4f} (30 labels, two-moons, 5 seeds)")
    assert acc >= random_accuracy + MARGIN
    assert acc >= 0.95


def test_the_bound_fails_a_broken_active_learner(random_accuracy):
    """The same bound rejects a learner that queries the most confident ids."""
    plugin = types.ModuleType("broken_al_plugin")
    plugin.register_strategies = hookimpl(lambda register: register(MostConfident))
    acc = _mean_accuracy("broken_most_confident", Registry(make_plugins(load="", extra=(plugin,))))
    print(f"\nmost confident: {acc:.4f} vs random {random_accuracy:.4f}")
    assert not acc >= random_accuracy + MARGIN
