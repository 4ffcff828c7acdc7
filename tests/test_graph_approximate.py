"""Approximate nearest neighbours (:mod:`sslzoo._ops.neighbours`) and the graph methods on them: the
neighbours against the exact search, the graph ``auto`` builds below and above the threshold, and the
labels propagated over the approximate graph against those over the exact one."""

from __future__ import annotations

import pytest
import torch

from sslzoo._default_plugins.label_propagation import LabelPropagation
from sslzoo._ops import graph, neighbours
from sslzoo._ops.neighbours import approximate_knn, nearest
from sslzoo.errors import OptionError


def blobs(n: int, dims: int = 16, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = 3 * torch.randn(classes, dims, generator=g)
    y = torch.randint(classes, (n,), generator=g)
    return centers[y] + torch.randn(n, dims, generator=g), y


def recall(found: torch.Tensor, true: torch.Tensor) -> float:
    return float((found.unsqueeze(2) == true.unsqueeze(1)).any(2).float().mean())


def test_approximate_neighbours_recall_most_of_the_exact_ones_with_exact_distances():
    x, _ = blobs(4000)
    _, true = graph.knn(x, 7)
    dist, index = approximate_knn(x, 7, generator=torch.Generator().manual_seed(0))
    assert index.shape == (4000, 7)
    assert recall(index, true) > 0.9
    assert torch.allclose(dist, (x[index] - x.unsqueeze(1)).square().sum(2), rtol=1e-4, atol=1e-4)
    assert bool((dist[:, 1:] >= dist[:, :-1]).all())  # nearest first
    rows = torch.arange(4000).unsqueeze(1)
    assert not bool((index == rows).any())  # never itself
    assert bool((index.sort(1).values[:, 1:] != index.sort(1).values[:, :-1]).all())  # no repeats


def test_neighbour_descent_raises_the_recall_of_the_trees_alone():
    x, _ = blobs(3000, dims=32)
    _, true = graph.knn(x, 7)
    trees_only = approximate_knn(x, 7, trees=2, refine=0, generator=torch.Generator().manual_seed(0))[1]
    refined = approximate_knn(x, 7, trees=2, refine=2, generator=torch.Generator().manual_seed(0))[1]
    assert recall(refined, true) > recall(trees_only, true) + 0.05


def test_tiny_inputs_and_leaves_smaller_than_k():
    x, _ = blobs(5)
    dist, index = approximate_knn(x, 7)
    assert index.shape == (5, 4) and not bool((index == torch.arange(5).unsqueeze(1)).any())
    assert approximate_knn(x[:1], 3)[1].shape == (1, 0)


def test_auto_searches_exactly_up_to_the_threshold(monkeypatch):
    monkeypatch.setattr(neighbours, "EXACT_UP_TO", 100)
    calls: list[int] = []

    def exact(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(x.shape[0])
        return graph.knn(x, k)

    x, _ = blobs(150)
    nearest(x[:100], 3, "auto", exact)
    nearest(x, 3, "auto", exact)
    nearest(x, 3, "exact", exact)
    assert calls == [100, 150]
    with pytest.raises(ValueError, match="allowed: auto, exact, approximate"):
        nearest(x, 3, "faiss", exact)  # type: ignore[arg-type]


def test_the_auto_graph_below_the_threshold_is_the_exact_graph():
    x, _ = blobs(500)
    exact = graph.knn_graph(x, 7)
    auto = graph.knn_graph(x, 7, neighbours="auto")
    assert torch.equal(auto.rows, exact.rows) and torch.equal(auto.cols, exact.cols)
    assert torch.equal(auto.values, exact.values)


def test_labels_propagated_over_the_approximate_graph_agree_with_the_exact_graphs():
    x, y = blobs(3000, dims=32, classes=10, seed=1)
    seeds = torch.arange(0, 3000, 60)
    labels = {}
    for how in ("exact", "approximate"):
        g = graph.knn_graph(x, 7, neighbours=how, generator=torch.Generator().manual_seed(0))
        assert g.edges >= 3000 * 7
        labels[how] = graph.label_spreading(g, seeds, y[seeds], 10).labels()[1]
    assert float((labels["exact"] == labels["approximate"]).float().mean()) > 0.98


def test_a_bad_knn_search_is_one_line_naming_what_is_allowed():
    with pytest.raises(OptionError) as error:
        LabelPropagation(knn_search="faiss")
    assert "\n" not in str(error.value) and "approximate" in str(error.value)
