"""ProbCover (Yehuda et al. 2022): the same δ and the same greedy picks as scikit-activeml's
``ProbCover.query`` (skactiveml/pool/_prob_cover.py, ported below) on the same embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import sslzoo
from sslzoo._default_plugins.probcover import DELTAS
from sslzoo._ops.coverage import delta_by_purity, max_coverage, radius_graph
from sslzoo._strategies.diversity import kmeans
from sslzoo.errors import OptionError
from sslzoo.testing import check_strategy, tiny_run


def blobs(n=160, dim=6, centres=4, seed=0):
    """Unit rows around ``centres`` directions: the normalised embeddings ProbCover covers."""
    generator = torch.Generator().manual_seed(seed)
    centre = torch.randn(centres, dim, generator=generator, dtype=torch.float64)
    x = centre[torch.arange(n) % centres] + 0.35 * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return F.normalize(x, dim=1)


def skactiveml_delta(x, y_cluster, deltas, alpha):
    """The δ of ``ProbCover.query`` given the clusters: the dense purity loop."""
    distances = np.linalg.norm(x[:, None] - x[None], axis=-1)
    delta_max = deltas[0]
    is_impure = y_cluster[:, None] != y_cluster
    for delta in deltas:
        edges = distances <= delta
        purity = 1 - (edges * is_impure).any(axis=1).mean()
        if purity < alpha:
            break
        delta_max = delta
    return delta_max


@pytest.mark.parametrize("alpha", [0.5, 0.8, 0.95])
def test_delta_agrees_with_scikit_activeml_on_the_same_clusters(alpha):
    x = blobs()
    clusters = kmeans(x, 4, torch.Generator().manual_seed(0))
    deltas = torch.tensor(DELTAS, dtype=torch.float64)
    expected = skactiveml_delta(x.numpy(), clusters.numpy(), np.array(DELTAS), alpha)
    assert delta_by_purity(x, clusters, deltas, alpha) == pytest.approx(expected)


@pytest.mark.parametrize(("delta", "seed"), [(0.3, 0), (0.5, 1), (0.9, 2)])
def test_greedy_picks_agree_with_scikit_activeml(delta, seed):
    """Each pick is one of scikit-activeml's highest-utility candidates in the same state (its ties are
    broken at random, so the reference then goes on from the pick made here)."""
    x = blobs(seed=seed)
    n, labeled, k = x.shape[0], 12, 15
    rows, cols = radius_graph(x, delta)
    positions = torch.arange(n)
    picks = max_coverage(rows, cols, n, positions[:labeled], positions[labeled:], k, torch.Generator().manual_seed(0))
    assert picks.numel() == k and len(set(picks.tolist())) == k

    edges = np.linalg.norm(x.numpy()[:, None] - x.numpy()[None], axis=-1) <= delta
    is_candidate = np.zeros(n, dtype=bool)
    is_candidate[labeled:] = True
    for pick in picks.tolist():
        is_covered = edges[~is_candidate].any(axis=0)  # step (ii): remove incoming edges of covered samples
        edges[:, is_covered] = False
        utilities = np.full(n, np.nan)
        utilities[is_candidate] = edges[is_candidate].sum(axis=1)  # step (i): out-degree
        assert is_candidate[pick] and utilities[pick] == np.nanmax(utilities)
        is_candidate[pick] = False


def test_the_graph_holds_every_pair_within_delta_and_no_other():
    x = blobs(n=90)
    rows, cols = radius_graph(x, 0.6)
    dense = torch.cdist(x, x) <= 0.6
    sparse = torch.zeros_like(dense)
    sparse[rows, cols] = True
    assert torch.equal(sparse, dense) and bool((rows[1:] >= rows[:-1]).all())


def test_a_fully_covered_set_still_queries_k_ids():
    x = blobs(n=40)
    rows, cols = radius_graph(x, 2.5)  # every ball holds everything: the labeled cover it all
    positions = torch.arange(40)
    picks = max_coverage(rows, cols, 40, positions[:3], positions[3:], 5, torch.Generator().manual_seed(0))
    assert picks.numel() == 5 and bool((picks >= 3).all())


def test_a_run_queries_distinct_pool_ids_and_repeats_under_its_seed():
    run = tiny_run("probcover")
    again = tiny_run("probcover")
    chosen = run.selects[0].chosen
    assert chosen.numel() == 5 and len(set(chosen.tolist())) == 5
    assert torch.equal(chosen, again.selects[0].chosen)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["probcover+self_training", "probcover"])
def test_probcover_composes_and_honours_the_contract(name):
    check_strategy(name, features="model")


def test_bad_options_are_one_line_errors():
    with pytest.raises(OptionError, match="alpha=1.5.*between 0.0 and 1.0"):
        sslzoo.create_strategy("probcover", alpha=1.5)
    with pytest.raises(OptionError, match="features.*'inputs', 'model'"):
        sslzoo.create_strategy("probcover", features="simclr")
    with pytest.raises(OptionError, match="sampling='power' of strategy 'probcover'"):
        tiny_run("probcover", sampling="power")
