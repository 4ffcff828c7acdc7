"""Stochastic batch acquisition (Kirsch et al. 2023), the ``sampling`` option of every scoring strategy:
the batch is drawn by the formulas of baal's ``PowerSampling``, ``GibbsSampling`` and ``RankBasedSampling``,
reproducibly under the run's seed, and ``topk`` stays the default."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import rankdata

import sslzoo
from sslzoo._ops.picking import gumbel, log_weights, sample_k
from sslzoo.errors import OptionError
from sslzoo.testing import check_strategy, tiny_run


def baal_distribution(scores: np.ndarray, how: str, beta: float) -> np.ndarray:
    """baal's ``_make_distribution`` (baal/active/heuristics/stochastics.py) with temperature 1 / beta,
    then its clip at 0 and normalisation (``StochasticHeuristic.get_ranks``)."""
    temperature = 1.0 / beta
    if how == "power":
        d = scores ** (1 / temperature)
        d = d / d.sum()
    elif how == "softmax":
        d = softmax(scores / temperature)
    else:
        rank = rankdata(-scores)
        d = rank ** (-1 / temperature)
        d = d / d.sum()
    d = np.clip(d, 0, None)
    return d / d.sum()


SCORES = torch.tensor([0.05, 0.4, 0.4, 0.9, 0.2, 0.7, 0.01, 0.33], dtype=torch.float64)


@pytest.mark.parametrize("how", ["power", "softmax", "softrank"])
@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_log_weights_are_the_log_of_baals_distribution_up_to_a_constant(how, beta):
    reference = np.log(baal_distribution(SCORES.numpy(), how, beta))
    ours = log_weights(SCORES, how, beta).numpy()
    assert np.allclose(ours - ours.max(), reference - reference.max(), atol=1e-9)


@pytest.mark.parametrize("how", ["power", "softmax", "softrank"])
def test_with_the_same_gumbel_noise_the_picks_equal_the_references(how):
    scores = torch.rand(300, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ids = torch.arange(1000, 1300)
    for seed in range(5):
        noise = gumbel(300, torch.Generator().manual_seed(seed)).numpy()
        keys = np.log(baal_distribution(scores.numpy(), how, 2.0)) + noise
        expected = ids[torch.from_numpy(np.argsort(-keys, kind="stable")[:25].copy())]
        picked = sample_k(scores, ids, 25, how, 2.0, torch.Generator().manual_seed(seed))
        assert picked.tolist() == expected.tolist()


@pytest.mark.parametrize("how", ["power", "softmax", "softrank"])
def test_single_draws_follow_baals_distribution(how):
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_k(scores, torch.arange(4), 1, how, 2.0, generator) for _ in range(4000)])
    frequencies = torch.bincount(draws, minlength=4).double() / 4000
    assert np.allclose(frequencies.numpy(), baal_distribution(scores.numpy(), how, 2.0), atol=0.03)


def test_beta_zero_draws_uniformly_and_a_large_beta_gives_the_top_k():
    scores = torch.linspace(0.01, 1.0, 100)
    ids = torch.arange(100)
    top = sample_k(scores, ids, 5, "power", 1e4, torch.Generator().manual_seed(0))
    assert sorted(top.tolist()) == [95, 96, 97, 98, 99]
    low = sum(int((sample_k(scores, ids, 10, "power", 0.0, torch.Generator().manual_seed(s)) < 50).sum())
              for s in range(40))
    assert 150 < low < 250  # of 400 draws, about half in the low-scoring half


def test_a_batch_holds_unique_candidates_even_with_zero_nan_and_negative_scores():
    scores = torch.tensor([0.0, -1.0, float("nan"), 0.3, 0.0])
    for how in ("power", "softmax", "softrank"):
        batch = sample_k(scores, torch.arange(100, 105), 5, how, 1.0, torch.Generator().manual_seed(0))
        assert batch.dtype == torch.long and sorted(batch.tolist()) == [100, 101, 102, 103, 104]
        assert sample_k(scores, torch.arange(5), 1, how, 50.0, torch.Generator().manual_seed(1)).tolist() == [3]


def test_topk_is_the_default_and_leaves_the_record_as_before():
    assert sslzoo.create_strategy("entropy").options.sampling == "topk"
    record = tiny_run("entropy").record
    assert "sampling" not in record["options"] and "sampling_beta" not in record["options"]


def test_a_sampling_run_queries_other_ids_than_top_k_and_records_how():
    top = tiny_run("bald").selects[0].chosen
    power = tiny_run("bald", sampling="power", sampling_beta=1.0)
    assert set(power.selects[0].chosen.tolist()) != set(top.tolist())
    assert power.record["options"]["sampling"] == "power" and power.record["options"]["sampling_beta"] == 1.0
    again = tiny_run("bald", sampling="power", sampling_beta=1.0)
    assert torch.equal(again.selects[0].chosen, power.selects[0].chosen)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["margin", "mc_entropy"])
def test_a_sampling_strategy_honours_the_contract(name):
    check_strategy(name, sampling="softrank", sampling_beta=2.0)


def test_a_strategy_that_chooses_its_batch_jointly_refuses_sampling_in_one_line():
    with pytest.raises(OptionError, match=r"sampling='power' of strategy 'kcenter'.*only sampling='topk'") as error:
        tiny_run("kcenter", sampling="power")
    assert "\n" not in str(error.value)


def test_bad_sampling_values_are_one_line_errors_naming_what_is_allowed():
    with pytest.raises(OptionError, match="power.*softmax.*softrank"):
        sslzoo.create_strategy("entropy", sampling="gumbel")
    with pytest.raises(OptionError, match="sampling_beta.*at least 0"):
        sslzoo.create_strategy("entropy", sampling="power", sampling_beta=-1)
