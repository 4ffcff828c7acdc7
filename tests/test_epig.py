"""EPIG (Bickford Smith et al. 2023): the scores agree with the authors' formulas on the same sampled
probabilities, and the strategy scores candidates against targets drawn from the pool."""

from __future__ import annotations

import math

import pytest
import torch

import sslzoo
from sslzoo._default_plugins.epig import epig_scores
from sslzoo.errors import OptionError
from sslzoo.testing import check_strategy, tiny_run


def authors_conditional_epig(probs_pool, probs_targ):
    """``conditional_epig_from_probs`` of fbickfordsmith/epig (src/uncertainty/epig_probs.py), ``[N, K, Cl]``."""
    probs_pool = probs_pool[:, None, :, :, None]  # [N_p, 1, K, Cl, 1]
    probs_targ = probs_targ[None, :, :, None, :]  # [1, N_t, K, 1, Cl]
    probs_joint = torch.mean(probs_pool * probs_targ, dim=2)  # [N_p, N_t, Cl, Cl]
    probs_pool = torch.mean(probs_pool, dim=2)
    probs_targ = torch.mean(probs_targ, dim=2)
    probs_pool_targ_indep = probs_pool * probs_targ
    scores = torch.sum(torch.xlogy(probs_joint, probs_joint), dim=(-2, -1))
    scores -= torch.sum(torch.xlogy(probs_joint, probs_pool_targ_indep), dim=(-2, -1))
    return scores  # [N_p, N_t]


def authors_epig(probs_pool, probs_targ):
    """``epig_from_probs``: the mean over targets of the conditional EPIG."""
    return torch.mean(authors_conditional_epig(probs_pool, probs_targ), dim=-1)


def sampled_probs(n, classes, passes, seed):
    """Probabilities of ``passes`` samples, (n, C, K) as ``ctx.predict_mc`` returns them, some near one-hot."""
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, classes, passes, generator=generator, dtype=torch.float64)
    return logits.softmax(dim=1)


@pytest.mark.parametrize(("classes", "passes", "targets"), [(2, 5, 7), (10, 20, 100), (3, 1, 4)])
def test_epig_agrees_with_the_authors_formula(classes, passes, targets):
    pool = sampled_probs(50, classes, passes, seed=1)
    target = sampled_probs(targets, classes, passes, seed=2)
    reference = authors_epig(pool.permute(0, 2, 1), target.permute(0, 2, 1))
    assert torch.allclose(epig_scores(pool, target), reference.clamp_min(0.0), atol=1e-6, rtol=0)


def test_epig_is_zero_when_every_weight_sample_predicts_alike():
    pool = sampled_probs(20, 4, 1, seed=3).expand(20, 4, 8)
    target = sampled_probs(6, 4, 1, seed=4).expand(6, 4, 8)
    assert torch.allclose(epig_scores(pool, target), torch.zeros(20, dtype=torch.float64), atol=1e-12)


def test_epig_is_at_most_the_entropies_it_is_made_of():
    pool, target = sampled_probs(40, 5, 10, seed=5), sampled_probs(30, 5, 10, seed=6)
    scores = epig_scores(pool, target)
    assert bool((scores >= 0).all()) and bool((scores <= math.log(5) + 1e-9).all())


def test_a_pool_input_that_is_a_target_gains_more_than_an_unrelated_one():
    """Two weight samples disagree on input a (the target) and on b in an unrelated way: a label of a
    itself tells about the target's label, b's tells nothing."""
    a = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, C, K): sample 1 says class 0, sample 2 class 1
    b = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])
    pool = torch.cat([a, b])
    scores = epig_scores(pool, a)
    assert scores[0] == pytest.approx(math.log(2)) and scores[1] == pytest.approx(0.0)


def test_epig_runs_draws_the_targets_from_the_pool_and_repeats_under_its_seed():
    run = tiny_run("epig", targets=8)
    again = tiny_run("epig", targets=8)
    assert torch.equal(run.selects[0].chosen, again.selects[0].chosen)
    assert run.record["options"]["targets"] == 8


@pytest.mark.slow
def test_epig_with_power_sampling_honours_the_contract():
    check_strategy("epig", targets=5, sampling="power")


def test_bad_targets_are_a_one_line_error():
    with pytest.raises(OptionError, match="targets=0.*between 1 and"):
        sslzoo.create_strategy("epig", targets=0)
