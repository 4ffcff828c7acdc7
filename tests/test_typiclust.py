"""TypiClust at scale: the selection agrees with the authors' code (Hacohen et al. 2022, avihu111/TypiClust,
``deep-al/pycls/al/typiclust.py``) on the same embedding and clusters; mini-batch k-means above 50
clusters against scikit-learn's ``MiniBatchKMeans``; typicality from approximate neighbours."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import Tensor

from sslzoo._default_plugins import typiclust as module
from sslzoo._default_plugins.typiclust import FULL_KMEANS_UP_TO, TypiClust
from sslzoo._strategies.diversity import assignments, minibatch_kmeans, typicality
from sslzoo.errors import OptionError

MIN_CLUSTER_SIZE, K_NN = 5, 20  # the authors' TypiClust constants


def authors_typicality(features: np.ndarray, num_neighbors: int) -> np.ndarray:
    """``calculate_typicality``: faiss ``IndexFlatL2`` searched for ``num_neighbors + 1`` (squared
    distances), the first (the row itself) dropped, ``1 / (mean + 1e-5)`` (brute force for faiss)."""
    d = ((features[:, None, :] - features[None, :, :]) ** 2).sum(2)
    nearest = np.sort(d, axis=1)[:, 1:num_neighbors + 1]
    return 1 / (nearest.mean(axis=1) + 1e-5)


def authors_select(features: np.ndarray, clusters: np.ndarray, n_labeled: int, budget: int) -> np.ndarray:
    """``TypiClust.select_samples`` on ``features`` (labeled rows first) and their ``clusters``: positions."""
    labels = clusters.copy()
    ids, sizes = np.unique(labels, return_counts=True)
    existing = np.bincount(labels[:n_labeled], minlength=len(ids))
    table = sorted((int(existing[i]), -int(sizes[i]), int(c)) for i, c in enumerate(ids)
                   if sizes[i] > MIN_CLUSTER_SIZE)  # pandas' sort_values(['existing_count', 'neg_cluster_size'])
    labels[:n_labeled] = -1
    selected = []
    for i in range(budget):
        cluster = table[i % len(table)][2]
        indices = (labels == cluster).nonzero()[0]
        typical = authors_typicality(features[indices], min(K_NN, len(indices) // 2))
        idx = indices[typical.argmax()]
        selected.append(idx)
        labels[idx] = -1
    return np.array(selected)


class FixedClusters(TypiClust):
    """TypiClust on given features and clusters (rows: the labeled ids, then the candidates)."""

    def __init__(self, features: Tensor, clusters: Tensor, **options: object) -> None:
        super().__init__(**options)
        self.rows, self.given = features, clusters

    def features(self, ctx: object, ids: Tensor) -> Tensor:
        return self.rows

    def cluster(self, features: Tensor, k: int, generator: torch.Generator) -> Tensor:
        return self.given


def test_selection_agrees_with_the_authors_code_on_the_same_embedding_and_clusters():
    g = torch.Generator().manual_seed(0)
    n_labeled, n = 12, 600
    features = torch.randn(n, 8, generator=g, dtype=torch.float64)
    clusters = assignments(features, features[:20])  # 20 uneven clusters, some tiny
    ctx = SimpleNamespace(labeled_ids=lambda: torch.arange(n_labeled), generator=g)
    ids = torch.arange(n_labeled, n)
    for budget in (10, 30):  # 30 > the clusters: some are visited twice, typicality recomputed without the pick
        ours = FixedClusters(features, clusters).choose(ctx, ids, budget)
        theirs = authors_select(features.numpy(), clusters.numpy(), n_labeled, budget)
        assert ours.tolist() == theirs.tolist()


def test_typicality_is_the_authors_formula():
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for k in (1, 7, 20):
        assert torch.allclose(typicality(x, k), torch.from_numpy(authors_typicality(x.numpy(), k)), rtol=1e-9)


def test_typicality_from_approximate_neighbours_picks_nearly_the_same_rows():
    x = torch.randn(3000, 16, generator=torch.Generator().manual_seed(2))
    exact = typicality(x, 20)
    approximate = typicality(x, 20, "approximate", torch.Generator().manual_seed(0))
    assert bool((approximate <= exact * (1 + 1e-5)).all())  # a missed neighbour is a farther one: never more typical
    top = set(exact.topk(30).indices.tolist())
    assert len(top & set(approximate.topk(30).indices.tolist())) >= 24


def blobs(n: int, centers: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    means = 6 * torch.randn(centers, 8, generator=g)
    return means[torch.randint(centers, (n,), generator=g)] + torch.randn(n, 8, generator=g)


def inertia(x: Tensor, labels: Tensor) -> float:
    centers = torch.zeros(int(labels.max()) + 1, x.shape[1]).index_add_(0, labels, x)
    centers /= torch.bincount(labels).clamp_min(1).unsqueeze(1)
    return float((x - centers[labels]).square().sum())


@pytest.mark.slow
def test_minibatch_kmeans_is_as_good_as_scikit_learns():
    from sklearn.cluster import MiniBatchKMeans

    x = blobs(30_000, 60, seed=3)
    ours = inertia(x, minibatch_kmeans(x, 60, torch.Generator().manual_seed(0)))
    theirs = [inertia(x, torch.from_numpy(MiniBatchKMeans(60, batch_size=5000, random_state=seed, n_init=1)
                                          .fit(x.numpy()).labels_).long()) for seed in range(3)]
    assert ours <= 1.05 * float(np.median(theirs))


def test_minibatch_kmeans_labels_every_row_by_its_nearest_center():
    x = blobs(4000, 5, seed=4)
    labels = minibatch_kmeans(x, 5, torch.Generator().manual_seed(0), batch_size=500)
    assert labels.shape == (4000,) and int(labels.max()) < 5
    centers = torch.stack([x[labels == c].mean(0) for c in range(5)])
    assert float((assignments(x, centers) == labels).float().mean()) > 0.99  # converged: a fixed point


def test_kmeans_auto_is_lloyds_up_to_50_clusters_and_minibatch_above(monkeypatch):
    used: list[str] = []
    monkeypatch.setattr(module, "kmeans", lambda x, k, g: used.append("lloyd") or torch.zeros(len(x), dtype=torch.long))
    monkeypatch.setattr(module, "minibatch_kmeans",
                        lambda x, k, g: used.append("minibatch") or torch.zeros(len(x), dtype=torch.long))
    x = torch.zeros(10, 2)
    for k, how in ((FULL_KMEANS_UP_TO, "auto"), (FULL_KMEANS_UP_TO + 1, "auto"), (100, "lloyd"), (2, "minibatch")):
        TypiClust(kmeans=how).cluster(x, k, torch.Generator())
    assert used == ["lloyd", "minibatch", "lloyd", "minibatch"]


def test_a_bad_kmeans_or_knn_search_is_one_line_naming_what_is_allowed():
    for option in ({"kmeans": "elkan"}, {"knn_search": "faiss"}):
        with pytest.raises(OptionError) as error:
            TypiClust(**option)
        assert "\n" not in str(error.value) and "auto" in str(error.value)
