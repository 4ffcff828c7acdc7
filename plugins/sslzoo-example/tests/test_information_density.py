"""Information density passes sslzoo's strategy contract and weighs uncertainty by typicality."""

from __future__ import annotations

import pytest
import torch

import sslzoo
from sslzoo.testing import StrategyContract, tiny_run
from sslzoo_example import InformationDensity, information_density


class TestInformationDensityContract(StrategyContract):
    strategy = "information_density"


def test_information_density_is_registered_by_this_distribution():
    assert sslzoo.get_strategy("information_density") is InformationDensity


def test_density_is_the_mean_cosine_similarity_to_every_row():
    features = torch.rand(50, 8, generator=torch.Generator().manual_seed(0))
    unit = features / features.norm(dim=1, keepdim=True)
    brute = (unit @ unit.T).mean(dim=1)  # the pool × pool matrix the identity avoids
    uncertainty = torch.rand(50, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(information_density(uncertainty, features, 2.0), uncertainty * brute**2, atol=1e-6)


def test_an_outlier_scores_below_a_typical_sample_of_the_same_uncertainty():
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [1.0, 0.1], [0.0, 1.0]])  # the last one is alone
    scores = information_density(torch.ones(4), features)
    assert scores[3] < scores[:3].min()


def test_beta_zero_gives_back_the_uncertainty():
    uncertainty = torch.tensor([0.3, 0.9, 0.1])
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert torch.equal(information_density(uncertainty, features, 0.0), uncertainty)


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="information_density needs"):
        information_density(torch.ones(3), torch.ones(4, 2))


def test_beta_must_not_be_negative():
    with pytest.raises(sslzoo.OptionError, match="beta"):
        InformationDensity(beta=-1)


def test_a_run_with_beta_zero_queries_what_entropy_queries():
    """Same seed, same model, same entropies in round 1: the density weight is all that differs."""
    plain = tiny_run("information_density", beta=0.0).selects[0].chosen
    entropy = tiny_run("entropy").selects[0].chosen
    assert plain.numel() == entropy.numel() == 5
    assert plain.tolist() == entropy.tolist()
