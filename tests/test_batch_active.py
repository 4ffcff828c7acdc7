"""Batch and diversity active learning: BatchBALD's joint entropies against enumeration, k-center
greedy, k-means++ seeding on factored gradients, k-means and typicality against brute force."""

from __future__ import annotations

import itertools

import pytest
import torch

from sslzoo import scores
from sslzoo._ops.embedding import GradientEmbedding
from sslzoo._ops.joint_entropy import batchbald, conditional_entropies, joint_entropies, sampled_joint
from sslzoo._strategies.diversity import kcenter_greedy, kmeans, kmeans_pp_seeding, min_sq_distances, typicality


def mc_probs(n: int, classes: int, passes: int, seed: int, sharpness: float = 2.0) -> torch.Tensor:
    """(n, C, K) probabilities of K random 'passes' (float64)."""
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(sharpness * torch.randn(n, classes, passes, generator=g, dtype=torch.float64), dim=1)


def enumerated_mutual_information(probs: torch.Tensor, batch: list[int]) -> float:
    """``H[y_batch] - Σ H[y_i | w]`` by summing over every label configuration of the batch."""
    p = probs[batch].permute(0, 2, 1)  # (n, K, C)
    n, _, c = p.shape
    joint = 0.0
    for labels in itertools.product(range(c), repeat=n):
        prob = torch.stack([p[i, :, y] for i, y in enumerate(labels)]).prod(0).mean()
        joint -= float(torch.special.xlogy(prob, prob))
    return joint - float(conditional_entropies(p).sum())


def test_batchbald_of_one_is_bald():
    probs = mc_probs(50, 4, 8, seed=0)
    positions, mi = batchbald(probs, 1, dtype=torch.float64)
    assert int(positions[0]) == int(scores.bald(probs).argmax())
    assert float(mi[0]) == pytest.approx(float(scores.bald(probs).max()), abs=1e-12)


def test_exact_joint_mutual_information_matches_enumeration_and_the_greedy_choice():
    probs = mc_probs(12, 3, 6, seed=1)
    positions, mi = batchbald(probs, 4, samples=10**6, dtype=torch.float64)  # 3^3 configurations: exact
    batch = positions.tolist()
    for i in range(4):
        assert float(mi[i]) == pytest.approx(enumerated_mutual_information(probs, batch[:i + 1]), abs=1e-10)
        best = max((enumerated_mutual_information(probs, batch[:i] + [j]), j) for j in range(12) if j not in batch[:i])
        assert best[1] == batch[i]
    assert len(set(batch)) == 4


def test_float32_joint_entropies_choose_the_float64_batch():
    probs = mc_probs(300, 10, 20, seed=10)
    single = batchbald(probs, 5, samples=100_000)
    double = batchbald(probs, 5, samples=100_000, dtype=torch.float64)
    assert torch.equal(single[0], double[0])
    torch.testing.assert_close(single[1], double[1], rtol=0, atol=1e-5)


def test_sampled_joint_entropy_estimates_the_exact_one():
    probs = mc_probs(5, 6, 10, seed=2, sharpness=1.0)
    p = probs.permute(0, 2, 1).contiguous()
    batch, candidates = p[:4], p[4:].permute(0, 2, 1).reshape(-1, 10)
    exact = torch.ones(1, 10, dtype=torch.float64)
    for item in batch:
        exact = (exact.t().unsqueeze(2) * item.unsqueeze(1)).reshape(10, -1).t()
    truth = float(joint_entropies(exact, candidates, 6))
    sampled = sampled_joint(batch, 40_000, torch.Generator().manual_seed(0))
    estimate = float(joint_entropies(sampled, candidates, 6, 1.0 / (sampled.mean(1) * sampled.shape[0])))
    assert sampled.shape == (40_000, 10)
    assert estimate == pytest.approx(truth, rel=0.01)


def test_batchbald_spreads_a_batch_that_bald_fills_with_copies():
    probs = mc_probs(40, 10, 20, seed=3)
    top = int(scores.bald(probs).argmax())
    copies = torch.cat([probs[top:top + 1].expand(10, -1, -1), probs])  # 10 copies of BALD's favourite first
    bald_batch = scores.bald(copies).topk(5).indices
    assert set(bald_batch.tolist()) <= set(range(11)) | {10 + top}  # copies only
    positions, mi = batchbald(copies, 5, samples=1000, generator=torch.Generator().manual_seed(0))
    assert sum(int(i) < 10 or int(i) == 10 + top for i in positions) == 1
    assert (mi[1:4] >= mi[:3] - 1e-5).all()  # exact (≤ 10^3 configurations): never falls as the batch grows


def test_batchbald_draws_from_the_generator_it_is_given():
    probs = mc_probs(60, 10, 10, seed=4)
    a = batchbald(probs, 6, samples=500, generator=torch.Generator().manual_seed(1))
    b = batchbald(probs, 6, samples=500, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def brute_kcenter(x: torch.Tensor, centers: torch.Tensor, k: int) -> list[int]:
    chosen: list[int] = []
    for _ in range(k):
        pool = torch.cat([centers, x[chosen]])
        nearest = torch.cdist(x, pool).min(1).values
        nearest[chosen] = -1
        chosen.append(int(nearest.argmax()))
    return chosen


def test_kcenter_greedy_is_farthest_first_without_a_candidates_matrix(monkeypatch):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(300, 6, generator=g, dtype=torch.float64)
    centers = torch.randn(7, 6, generator=g, dtype=torch.float64)
    monkeypatch.setattr("sslzoo._strategies.diversity.ELEMENTS", 600)  # 2 centers a chunk: chunking changes nothing
    assert kcenter_greedy(x, centers, 12).tolist() == brute_kcenter(x, centers, 12)
    torch.testing.assert_close(min_sq_distances(x, centers), torch.cdist(x, centers).square().min(1).values)


def dense_seeding(dense: torch.Tensor, k: int, generator: torch.Generator) -> list[int]:
    """BADGE's k-means++ seeding on the dense gradients (the authors' loop)."""
    chosen = [int(dense.norm(dim=1).argmax())]
    for _ in range(k - 1):
        d2 = torch.cdist(dense, dense[chosen]).min(1).values.square()
        d2[chosen] = 0
        chosen.append(int(torch.multinomial(d2, 1, generator=generator)[0]))
    return chosen


def test_kmeans_pp_seeding_on_factors_is_the_seeding_on_dense_gradients():
    g = torch.Generator().manual_seed(6)
    grads = GradientEmbedding(torch.randn(80, 4, generator=g, dtype=torch.float64),
                              torch.randn(80, 9, generator=g, dtype=torch.float64))
    ours = kmeans_pp_seeding(grads, 10, torch.Generator().manual_seed(7)).tolist()
    assert ours == dense_seeding(grads.dense(), 10, torch.Generator().manual_seed(7))
    assert ours[0] == int(grads.sq_norms().argmax()) and len(set(ours)) == 10


def test_kmeans_pp_seeding_draws_far_points_more_often():
    """A tight group and one far point: after the largest gradient (in the group), the far point
    holds almost all the squared distance, so it comes next almost always."""
    h = torch.cat([torch.tensor([5.0, 0.0]).expand(20, 2), torch.tensor([[0.0, 4.0]])])
    a = torch.ones(21, 1)
    a[0] = 1.01  # the largest gradient: row 0
    far = sum(int(kmeans_pp_seeding(GradientEmbedding(a, h), 2, torch.Generator().manual_seed(s))[1]) == 20
              for s in range(50))
    assert far >= 45


def blobs(n_per: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    truth = torch.arange(4).repeat_interleave(n_per)
    return centers[truth] + 0.5 * torch.randn(4 * n_per, 2, generator=g), truth


def test_kmeans_recovers_separated_blobs(monkeypatch):
    monkeypatch.setattr("sslzoo._strategies.diversity.ELEMENTS", 64)  # chunked assignments
    x, truth = blobs(50, seed=8)
    found = kmeans(x, 4, torch.Generator().manual_seed(0))
    pairs = set(zip(truth.tolist(), found.tolist()))
    assert len(pairs) == 4 and len({f for _, f in pairs}) == 4


def test_typicality_is_the_inverse_mean_squared_distance_to_the_nearest_neighbours(monkeypatch):
    monkeypatch.setattr("sslzoo._strategies.diversity.ELEMENTS", 50)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    d = torch.cdist(x, x).square()
    d.fill_diagonal_(torch.inf)
    expected = 1.0 / (d.topk(5, dim=1, largest=False).values.mean(1) + 1e-5)
    torch.testing.assert_close(typicality(x, 5), expected)
    line = torch.tensor([[0.0], [1.0], [-1.0], [1.5], [-1.5], [3.0], [-3.0], [5.0], [-5.0]])
    assert int(typicality(line, 4).argmax()) == 0  # the densest point
