"""Committees and deep ensembles: the disagreement scores against scikit-activeml's and modAL's
formulas, the members the engine trains (``ctx.ensemble``) and the strategies' options."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from sslzoo import scores
from sslzoo._contract.registry import default_registry
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.ensemble import _train_one, _train_stacked, member_seeds
from sslzoo._engine.run import Run, RunSpec
from sslzoo._ops import disagreement, inference
from sslzoo._ops.ensemble import batchable
from sslzoo._ops.joint_entropy import batchbald
from sslzoo.errors import OptionError
from sslzoo.testing import TINY_DATA, check_strategy, tiny_options

# -- scikit-activeml's formulas (skactiveml/pool/_query_by_committee.py), ported -----------------------


def skactiveml_vote_entropy(votes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``vote_entropy(votes, classes)``: votes (n_samples, n_estimators); ``compute_vote_vectors`` counts them."""
    n_estimators = votes.shape[1]
    vote_count = np.stack([(votes == c).sum(axis=1) for c in classes], axis=1).astype(float)
    v = vote_count / n_estimators
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nansum(-v * np.log(v), axis=1)


def skactiveml_average_kl_divergence(probas: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """``average_kl_divergence(probas, eps)``: probas (n_estimators, n_samples, n_classes)."""
    probas = probas.copy()
    n_estimators = probas.shape[0]
    np.clip(probas, a_min=eps, a_max=1, out=probas)
    probas /= probas.sum(axis=2, keepdims=True)
    probas_mean = np.mean(probas, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.nansum(np.nansum(probas * np.log(probas / probas_mean), axis=2), axis=0)
    return out / n_estimators


# -- modAL's (modAL/disagreement.py), ported: p_vote is (n_samples, n_learners, n_classes) -------------


def modal_consensus_entropy(p_vote: np.ndarray) -> np.ndarray:
    return np.transpose(scipy.stats.entropy(np.transpose(p_vote.mean(axis=1))))


def modal_kl_max_disagreement(p_vote: np.ndarray) -> np.ndarray:
    p_consensus = np.mean(p_vote, axis=1)
    kl = np.zeros(shape=(p_vote.shape[0], p_vote.shape[1]))
    for learner in range(p_vote.shape[1]):
        kl[:, learner] = scipy.stats.entropy(np.transpose(p_vote[:, learner, :]), qk=np.transpose(p_consensus))
    return np.max(kl, axis=1)


def committee_probabilities(n: int = 300, classes: int = 4, members: int = 5, seed: int = 0) -> torch.Tensor:
    """(N, C, K) probabilities, every one above 1e-4 (so that scikit-activeml's clipping at 1e-7 does
    nothing), with ties of the votes among them."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, members, generator=g, dtype=torch.float64) * 2.0
    return torch.softmax(logits, dim=1)


def test_vote_entropy_agrees_with_scikit_activeml():
    p = committee_probabilities()
    votes = p.argmax(dim=1).numpy()  # (N, K): each member's class
    expected = skactiveml_vote_entropy(votes, np.arange(p.shape[1]))
    assert np.abs(disagreement.vote_entropy(p).numpy() - expected).max() < 1e-6
    assert len(np.unique(expected.round(9))) > 2  # unanimous, split and every-member-differs rows among them


def test_consensus_entropy_is_modals_entropy_of_the_mean():
    p = committee_probabilities()
    expected = modal_consensus_entropy(p.permute(0, 2, 1).numpy())
    assert np.abs(scores.mc_entropy(p).numpy() - expected).max() < 1e-6


def test_max_kl_agrees_with_modals_max_disagreement():
    p = committee_probabilities()
    expected = modal_kl_max_disagreement(p.permute(0, 2, 1).numpy())
    assert np.abs(disagreement.max_kl(p).numpy() - expected).max() < 1e-6


def test_mean_kl_to_the_mean_is_bald_as_scikit_activemls_average_kl_divergence():
    p = committee_probabilities()
    expected = skactiveml_average_kl_divergence(p.permute(2, 0, 1).numpy())
    assert np.abs(scores.bald(p).numpy() - expected).max() < 1e-6
    assert np.abs(disagreement.kl_to_mean(p).mean(dim=1).numpy() - expected).max() < 1e-6


def test_unanimous_members_do_not_disagree():
    p = committee_probabilities(members=1).expand(-1, -1, 4)
    for score in (disagreement.vote_entropy, disagreement.max_kl, scores.bald):
        assert score(p).abs().max() < 1e-9


# -- the members the engine trains ----------------------------------------------------------------------


def tiny_setup(name: str, model: str | None = None, **overrides) -> tuple[Run, object]:
    """A tiny two-moons run of ``name``, set up."""
    registry = default_registry()
    options = tiny_options(name, registry, **overrides)
    strategy = create_strategy(name, registry, **options)
    spec = RunSpec(strategy=name, dataset="moons", labels=10, seed=3, device="cpu", split="random", model=model,
                   options=options, dataset_options=dict(TINY_DATA))
    run = Run(spec, strategy, registry)
    run.setup()
    return run, strategy


def tiny_round(name: str, model: str | None = None, **overrides) -> tuple[Run, object]:
    """A tiny two-moons run of ``name`` after round 0's training, about to select for round 1."""
    run, strategy = tiny_setup(name, model, **overrides)
    run.train_round(0)
    run.ctx.round = 1
    return run, strategy


def members_probabilities(run: Run, ids: torch.Tensor, members: int) -> torch.Tensor:
    """(N, C, K): each member of ``ctx.ensemble`` asked for its probabilities one by one."""
    ensemble = run.ctx.ensemble(members)
    return torch.stack([inference.probabilities(m, run.ctx.x, ids) for m in ensemble.members], dim=2)


def test_ensemble_bald_scores_balds_formula_on_the_members_predictions():
    run, strategy = tiny_round("ensemble_bald", members=4)
    pool = run.ctx.pool_ids()
    scored = strategy.score(run.ctx, pool)
    p = members_probabilities(run, pool, 4).double().numpy()  # the same seeds: the same members
    mean = p.mean(axis=2)
    bald = -(mean * np.log(mean)).sum(axis=1) + (p * np.log(p)).sum(axis=1).mean(axis=1)
    assert np.abs(scored.numpy() - bald).max() < 1e-6
    assert bald.max() > 1e-3  # the members disagree somewhere


def test_members_are_reproducible_independent_and_leave_the_run_as_it_was():
    run, _ = tiny_round("ensemble_bald")
    pool = run.ctx.pool_ids()
    cpu_state, generator_state = torch.get_rng_state(), run.ctx.generator.get_state()
    first = run.ctx.ensemble(3)
    assert torch.equal(torch.get_rng_state(), cpu_state) and torch.equal(run.ctx.generator.get_state(), generator_state)
    assert first.batched  # moons_mlp, with its dropout, trains in one batched pass
    again = run.ctx.ensemble(3).probabilities(pool)
    probs = first.probabilities(pool)
    assert torch.equal(probs, again)
    assert not torch.allclose(probs[..., 0], probs[..., 1], atol=1e-3)  # initialised from different seeds
    assert len(set(member_seeds(3, 1, 5)) | set(member_seeds(3, 2, 5)) | set(member_seeds(4, 1, 5))) == 15


def test_batched_training_trains_each_member_as_alone():
    """Without dropout (a linear model), one batched pass gives the K members that K separate trainings give."""
    run, _ = tiny_round("ensemble_bald", model="linear")
    x, ledger, training, ids = run.ctx.x, run.data.ledger, run.training, run.data.ledger.train()
    seeds = member_seeds(0, 1, 3)

    def fresh() -> list[nn.Module]:
        out = []
        for seed in seeds:
            torch.manual_seed(seed)
            out.append(run.members.fresh_member())
        return out

    together, alone = fresh(), fresh()
    _train_stacked(together, [torch.Generator().manual_seed(s) for s in seeds], x, ids, ledger, training, "softmax")
    for model, seed in zip(alone, seeds):
        _train_one(model, torch.Generator().manual_seed(seed), x, ids, ledger, training, "softmax")
    for a, b in zip(together, alone):
        for (name, p), q in zip(a.named_parameters(), b.parameters()):
            assert torch.allclose(p, q, atol=1e-5), name
        assert not torch.equal(a[1].weight, fresh()[0][1].weight)  # trained


class Branching(nn.Module):
    """A forward pass with a data-dependent Python branch, which ``vmap`` cannot batch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        return out if out.sum() > 0 else -out


def test_a_model_vmap_cannot_batch_trains_member_by_member():
    x = torch.randn(8, 2)
    assert not batchable([Branching(), Branching()], x)
    assert batchable([nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 2)) for _ in range(2)], x)


def test_ensemble_batchbald_is_batchbald_on_the_members_predictions():
    run, strategy = tiny_round("ensemble_batchbald", members=3, joint_samples=1000)
    pool = run.ctx.pool_ids()
    state = run.ctx.generator.get_state()
    chosen = strategy.choose(run.ctx, pool, 4)
    run.ctx.generator.set_state(state)
    positions, _ = batchbald(members_probabilities(run, pool, 3), 4, 1000, run.ctx.generator)
    assert torch.equal(chosen, pool[positions]) and chosen.unique().numel() == 4


@pytest.mark.slow
def test_a_committee_composes_with_a_pseudo_labeler():
    check_strategy("qbc_vote_entropy+self_training")


# -- options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qbc_vote_entropy", "qbc_consensus_entropy", "qbc_max_kl", "ensemble_bald",
                                  "ensemble_batchbald"])
def test_a_committee_of_fewer_than_two_is_a_one_line_error(name):
    with pytest.raises(OptionError, match="members") as error:
        create_strategy(name, default_registry(), members=1)
    assert "\n" not in str(error.value) and "between 2 and 100" in str(error.value)


def test_ensemble_batchbald_refuses_fewer_joint_samples_than_members():
    run, strategy = tiny_setup("ensemble_batchbald", joint_samples=3)
    with pytest.raises(OptionError, match="joint_samples=3 .* smaller than members=5") as error:
        strategy.check(run.ctx)
    assert "\n" not in str(error.value)
