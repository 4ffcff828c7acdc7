"""k-center greedy and BADGE's k-means++ seeding on large pools skip the rows a new center cannot move
(the triangle inequality): the same picks as measuring every row at every pick."""

from __future__ import annotations

import torch

from sslzoo._ops.embedding import GradientEmbedding
from sslzoo._strategies import diversity
from sslzoo._strategies.diversity import kcenter_greedy, kmeans_pp_seeding, min_sq_distances, sq_distances


def clustered(n: int, dims: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(10, (n,), generator=g)
    return 4 * torch.randn(10, dims, generator=g)[labels] + torch.randn(n, dims, generator=g), labels


def test_kcenter_greedy_with_skipped_rows_makes_the_same_picks(monkeypatch):
    x, _ = clustered(6000, 32, seed=0)
    for centers in (x[:25].clone(), x[:0]):
        every_row = kcenter_greedy(x, centers, 40, torch.Generator().manual_seed(1))
        monkeypatch.setattr(diversity, "PRUNE_FROM", 1)
        skipping = kcenter_greedy(x, centers, 40, torch.Generator().manual_seed(1))
        monkeypatch.setattr(diversity, "PRUNE_FROM", 2**16)
        assert skipping.tolist() == every_row.tolist()


def test_kmeans_pp_seeding_with_skipped_rows_makes_the_same_draws(monkeypatch):
    x, labels = clustered(6000, 32, seed=2)
    a = torch.softmax(torch.randn(6000, 10, generator=torch.Generator().manual_seed(3)), 1)
    g = GradientEmbedding(a - torch.nn.functional.one_hot(labels, 10).float(), x.relu())
    every_row = kmeans_pp_seeding(g, 50, torch.Generator().manual_seed(4))
    monkeypatch.setattr(diversity, "PRUNE_FROM", 1)
    skipping = kmeans_pp_seeding(GradientEmbedding(g.a, g.h), 50, torch.Generator().manual_seed(4))
    assert skipping.tolist() == every_row.tolist()


def test_min_sq_distances_in_blocks_of_rows_is_the_minimum_over_every_center(monkeypatch):
    x, _ = clustered(500, 8, seed=5)
    centers = x[::7]
    monkeypatch.setattr(diversity, "ELEMENTS", 64)  # blocks of one row
    assert torch.allclose(min_sq_distances(x, centers), sq_distances(x, centers).amin(1), atol=1e-3)
    assert bool(min_sq_distances(x, centers[:0]).isinf().all())
