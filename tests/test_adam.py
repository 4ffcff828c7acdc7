"""Adam with ε̂ (``adam_epsilon="hat"``): the update of Kingma & Ba (2015) before their §2.1."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from sslzoo._ops.adam import AdamEpsilonHat, AdamWEpsilonHat


def eps_hat_steps(grads: list[torch.Tensor], lr: float, eps: float, b1: float = 0.9, b2: float = 0.999,
                  decoupled: float = 0.0) -> torch.Tensor:
    """The ε̂ form written out: α_t = α √(1 − β₂ᵗ) / (1 − β₁ᵗ), θ -= α_t m / (√v + ε̂)."""
    theta = torch.zeros_like(grads[0], dtype=torch.float64)
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        g = g.double()
        theta = theta * (1 - lr * decoupled)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta = theta - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (v.sqrt() + eps)
    return theta


def run(optimizer_class, grads: list[torch.Tensor], **kwargs) -> torch.Tensor:
    theta = torch.zeros_like(grads[0], requires_grad=True)
    opt = optimizer_class([theta], **kwargs)
    for g in grads:
        theta.grad = g.clone()
        opt.step()
    return theta.detach()


@pytest.mark.parametrize("fused", [False, True])
def test_adam_epsilon_hat_takes_the_eps_hat_step(fused):
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(50, generator=gen) * 10.0 ** torch.randint(-9, 0, (50,), generator=gen) for _ in range(6)]
    ours = run(AdamEpsilonHat, grads, lr=0.1, eps=1e-6, fused=fused)
    assert torch.allclose(ours.double(), eps_hat_steps(grads, 0.1, 1e-6), rtol=1e-5, atol=1e-7)
    algorithm1 = run(torch.optim.Adam, grads, lr=0.1, eps=1e-6, fused=fused)
    assert not torch.allclose(algorithm1, ours, rtol=1e-3, atol=1e-5)  # the two forms do differ here


def test_adamw_epsilon_hat_keeps_the_decoupled_weight_decay():
    grads = [torch.full((3,), 1e-3), torch.full((3,), -2e-3), torch.full((3,), 5e-4)]
    theta = torch.ones(3, requires_grad=True)
    opt = AdamWEpsilonHat([theta], lr=0.01, eps=1e-8, weight_decay=0.5)
    for g in grads:
        theta.grad = g.clone()
        opt.step()
    expected = eps_hat_steps(grads, 0.01, 1e-8, decoupled=0.5)
    # from θ0 = 1 instead of 0: decay of the start plus the same Adam steps
    start = (1 - 0.01 * 0.5) ** len(grads)
    assert torch.allclose(theta.detach().double(), expected + start, atol=1e-6)


def test_a_rounding_size_gradient_moves_a_weight_far_less_with_eps_hat():
    """At step 1 a gradient of 1e-9 (the rounding residue of a zero gradient in float32) moves a
    weight by lr·g/(|g|+ε) = 0.09·lr with ε in √v̂, by lr·g/(|g|+ε/√(1−β₂)) ≈ 0.003·lr with ε̂."""
    grads = [torch.tensor([1e-9])]
    assert run(torch.optim.Adam, grads, lr=1.0).item() == pytest.approx(-1e-9 / (1e-9 + 1e-8), rel=1e-4)
    assert run(AdamEpsilonHat, grads, lr=1.0).item() == pytest.approx(-1e-9 / (1e-9 + 1e-8 / math.sqrt(1e-3)),
                                                                      rel=1e-4)


def test_the_eps_hat_step_count_survives_a_state_dict_round_trip():
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(4, generator=gen) * 1e-7 for _ in range(4)]
    theta = torch.zeros(4, requires_grad=True)
    opt = AdamEpsilonHat([theta], lr=0.1)
    for g in grads[:2]:
        theta.grad = g.clone()
        opt.step()
    resumed_theta = theta.detach().clone().requires_grad_(True)
    resumed = AdamEpsilonHat([resumed_theta], lr=0.1)
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))  # no shared moment tensors
    for g in grads[2:]:
        theta.grad, resumed_theta.grad = g.clone(), g.clone()
        opt.step()
        resumed.step()
    assert torch.equal(theta, resumed_theta)
    assert torch.allclose(theta.detach().double(), eps_hat_steps(grads, 0.1, 1e-8), rtol=1e-5, atol=1e-9)
