"""PowerBALD passes sslzoo's strategy contract and samples its batches stochastically, yet seeded."""

from __future__ import annotations

import pytest
import torch

import sslzoo
from sslzoo.testing import StrategyContract, tiny_run
from sslzoo_example import PowerBald, power_sample


class TestPowerBaldContract(StrategyContract):
    strategy = "power_bald"


def test_power_bald_is_registered_by_this_distribution():
    assert sslzoo.get_strategy("power_bald") is PowerBald


def draw(scores, k, beta=1.0, seed=0):
    ids = torch.arange(100, 100 + scores.numel())
    return power_sample(scores, ids, k, beta, torch.Generator().manual_seed(seed))


def test_batches_are_random_not_top_k():
    scores = torch.linspace(0.1, 1.0, 10)
    batches = {tuple(sorted(draw(scores, 3, seed=s).tolist())) for s in range(50)}
    assert len(batches) > 10  # top-k would always give (107, 108, 109)


def test_same_seed_gives_the_same_batch():
    scores = torch.rand(500, generator=torch.Generator().manual_seed(1))
    assert torch.equal(draw(scores, 20, seed=7), draw(scores, 20, seed=7))
    assert not torch.equal(draw(scores, 20, seed=7), draw(scores, 20, seed=8))


def test_batch_holds_unique_ids_from_the_candidates():
    scores = torch.tensor([0.0, 0.0, float("nan"), 0.3, 0.0])
    batch = draw(scores, 5)
    assert batch.dtype == torch.long
    assert sorted(batch.tolist()) == [100, 101, 102, 103, 104]
    assert draw(scores, 9).numel() == 5 and draw(scores, 0).numel() == 0


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_draw_frequencies_follow_score_to_the_power_beta(beta):
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4])
    generator = torch.Generator().manual_seed(0)
    ids = torch.arange(4)
    counts = torch.bincount(torch.cat([power_sample(scores, ids, 1, beta, generator) for _ in range(4000)]),
                            minlength=4)
    expected = scores**beta / (scores**beta).sum()
    assert torch.allclose(counts / 4000, expected, atol=0.03), (counts / 4000, expected)


def test_beta_zero_is_uniform_and_large_beta_is_top_k():
    scores = torch.linspace(0.01, 1.0, 100)
    assert sorted(draw(scores, 5, beta=1e4).tolist()) == [195, 196, 197, 198, 199]
    low_half = sum(int((draw(scores, 10, beta=0.0, seed=s) < 150).sum()) for s in range(40))
    assert 150 < low_half < 250  # of 400 draws, about half in the low-scoring half


def test_beta_must_not_be_negative():
    with pytest.raises(sslzoo.OptionError, match="beta"):
        PowerBald(beta=-1)


def test_a_run_queries_other_ids_than_top_k_bald():
    """Same seed, same model, same BALD scores in round 1: PowerBALD samples, BALD takes the top."""
    power = tiny_run("power_bald").selects[0].chosen
    top = tiny_run("bald").selects[0].chosen
    assert power.numel() == top.numel() == 5
    assert set(power.tolist()) != set(top.tolist())
