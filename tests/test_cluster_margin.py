"""Cluster-Margin (Citovsky et al. 2021): the same picks as a plain implementation of the paper's
Algorithm 1 (scipy's average-linkage HAC, the k_m smallest margins, round-robin over the clusters
smallest first) on the same embeddings, probabilities and random draws."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import fcluster, linkage

import sslzoo
from sslzoo._default_plugins import cluster_margin
from sslzoo._default_plugins.cluster_margin import ClusterMargin, round_robin
from sslzoo._ops.hac import average_linkage
from sslzoo.errors import OptionError
from sslzoo.testing import check_strategy, tiny_run


def same_partition(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return bool(((a[:, None] == a[None]) == (b[:, None] == b[None])).all())


def algorithm_1(x, probs, k, k_m, n_clusters, perm):
    """Algorithm 1 of the paper, written plainly: HAC with average linkage once, the k_m examples of
    smallest margin, their clusters sorted by size ascending, round-robin with a random example of each
    (the next one of ``perm``, a random order of the k_m positions) until k are chosen."""
    labels = fcluster(linkage(x, method="average"), n_clusters, criterion="maxclust")
    top2 = np.sort(probs, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    smallest = np.argsort(margin, kind="stable")[:k_m]
    groups: dict[int, list[int]] = {}
    for position in perm:
        groups.setdefault(labels[smallest[position]], []).append(int(smallest[position]))
    ordered = sorted(groups.values(), key=len)  # stable: equal sizes keep their first member's order
    chosen: list[int] = []
    turn = 0
    while len(chosen) < k:
        for group in ordered:
            if turn < len(group) and len(chosen) < k:
                chosen.append(group[turn])
        turn += 1
    return chosen


@pytest.mark.parametrize(("n", "clusters"), [(40, 5), (200, 12), (500, 30)])
def test_average_linkage_gives_scipys_clusters(n, clusters):
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    reference = fcluster(linkage(x.numpy(), method="average"), clusters, criterion="maxclust")
    ours = average_linkage(x, clusters)
    assert ours.unique().numel() == clusters and same_partition(ours.numpy(), reference)


def stub_context(x, probs, seed):
    """What ``ClusterMargin.choose`` reads of a run: inputs, pool, predictions, generator."""
    return types.SimpleNamespace(x=x, generator=torch.Generator().manual_seed(seed),
                                 pool_ids=lambda: torch.arange(x.shape[0]), predict=lambda ids: probs[ids])


@pytest.mark.parametrize(("k", "factor", "clusters", "seed"), [(10, 10.0, 20, 0), (7, 3.0, 8, 1), (25, 4.0, 50, 2)])
def test_picks_agree_with_algorithm_1(k, factor, clusters, seed):
    generator = torch.Generator().manual_seed(100 + seed)
    n = 300
    centres = 3 * torch.randn(6, 5, generator=generator, dtype=torch.float64)
    x = torch.randn(n, 5, generator=generator, dtype=torch.float64) + centres[torch.arange(n) % 6]
    probs = torch.randn(n, 4, generator=generator, dtype=torch.float64).mul(2).softmax(1)
    strategy = ClusterMargin(features="inputs", margin_factor=factor, clusters=clusters)
    picks = strategy.choose(stub_context(x, probs, seed), torch.arange(n), k)

    replay = torch.Generator().manual_seed(seed)  # the draws choose makes, in its order
    torch.randperm(n, generator=replay)  # the HAC sample (here the whole pool)
    torch.randperm(n, generator=replay)  # top_k's tie-break (no ties in these margins)
    k_m = int(factor * k)
    perm = torch.randperm(k_m, generator=replay).tolist()
    assert picks.tolist() == algorithm_1(x.numpy(), probs.numpy(), k, k_m, clusters, perm)


def test_round_robin_takes_every_cluster_before_any_twice():
    clusters = torch.tensor([0, 0, 0, 1, 2, 2, 1, 0, 3])
    picks = round_robin(clusters, torch.arange(9), 6)
    assert clusters[picks].tolist() == [3, 1, 2, 0, 1, 2]  # sizes 1, 2, 2, 4: smallest first, then round two


def test_the_clusters_are_computed_once_per_run(monkeypatch):
    calls = []
    monkeypatch.setattr(cluster_margin, "average_linkage", lambda x, n: calls.append(len(x)) or average_linkage(x, n))
    run = tiny_run("cluster_margin", budget=30)
    rounds = sum(1 for s in run.selects if s.chosen.numel())
    assert rounds >= 2 and len(calls) == 2  # once per run: the run itself and tiny_run's probe of a copy
    again = tiny_run("cluster_margin", budget=30)
    assert [s.chosen.tolist() for s in run.selects] == [s.chosen.tolist() for s in again.selects]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cluster_margin+self_training", "cluster_margin"])
def test_cluster_margin_composes_and_honours_the_contract(name):
    check_strategy(name, hac_sample=50)


def test_bad_options_are_one_line_errors():
    with pytest.raises(OptionError, match="margin_factor=0.5.*at least 1.0"):
        sslzoo.create_strategy("cluster_margin", margin_factor=0.5)
    with pytest.raises(OptionError, match="hac_sample=1.*between 2 and"):
        sslzoo.create_strategy("cluster_margin", hac_sample=1)
