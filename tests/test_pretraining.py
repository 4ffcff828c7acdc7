"""The self-supervised stage (``--pretrain``): the methods' losses against their reference code, the
views, the stage's cache and how a run uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sslzoo._contract.registry import default_registry
from sslzoo._default_plugins.pretrainers import negative_cosine, nt_xent
from sslzoo._engine.pretraining import Pretraining
from sslzoo._ops.views import channel_range, random_view
from sslzoo.errors import OptionError, UnknownNameError


def reference_contrastive_loss(hidden: np.ndarray, temperature: float) -> float:
    """google-research/simclr ``tf2/objective.py`` ``add_contrastive_loss(hidden, hidden_norm=True,
    temperature)`` on one replica, its TensorFlow calls written with NumPy."""
    large_num = 1e9
    hidden = hidden / np.linalg.norm(hidden, axis=-1, keepdims=True)
    hidden1, hidden2 = np.split(hidden, 2, 0)
    batch_size = hidden1.shape[0]
    labels = np.eye(batch_size, batch_size * 2)
    masks = np.eye(batch_size)
    logits_aa = hidden1 @ hidden1.T / temperature - masks * large_num
    logits_bb = hidden2 @ hidden2.T / temperature - masks * large_num
    logits_ab = hidden1 @ hidden2.T / temperature
    logits_ba = hidden2 @ hidden1.T / temperature

    def softmax_cross_entropy_with_logits(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return -(labels * log_softmax).sum(axis=1)

    loss_a = softmax_cross_entropy_with_logits(labels, np.concatenate([logits_ab, logits_aa], 1))
    loss_b = softmax_cross_entropy_with_logits(labels, np.concatenate([logits_ba, logits_bb], 1))
    return float(np.mean(loss_a + loss_b))


@pytest.mark.parametrize("temperature", [0.5, 0.1, 1.0])
def test_nt_xent_is_the_simclr_reference_loss(temperature):
    generator = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(16, 8, generator=generator), torch.randn(16, 8, generator=generator)
    expected = reference_contrastive_loss(torch.cat([z1, z2]).double().numpy(), temperature)
    assert abs(float(nt_xent(z1, z2, temperature)) - expected) < 1e-6 * max(1.0, expected)


def test_negative_cosine_is_the_simsiam_reference_loss_with_its_stop_gradient():
    generator = torch.Generator().manual_seed(4)
    p1, p2, z1, z2 = (torch.randn(12, 6, generator=generator, requires_grad=True) for _ in range(4))
    criterion = nn.CosineSimilarity(dim=1)  # facebookresearch/simsiam main_simsiam.py, train()
    expected = -(criterion(p1, z2.detach()).mean() + criterion(p2, z1.detach()).mean()) * 0.5
    loss = negative_cosine(p1, p2, z1, z2)
    assert abs(loss.detach().item() - expected.detach().item()) < 1e-6
    loss.backward()
    assert z1.grad is None and z2.grad is None  # the projections are targets: no gradient reaches them
    assert p1.grad is not None and float(p1.grad.abs().sum()) > 0


def test_views_are_drawn_from_the_generator_and_stay_in_the_pixel_range():
    x = torch.rand(6, 3, 16, 16) * 2 - 0.5  # a per-channel affine normalisation of [0, 1] pixels
    pixels = channel_range(x, torch.arange(6))
    first = random_view(x, torch.Generator().manual_seed(1), pixels, 0.08, 0.5, 10.0)
    again = random_view(x, torch.Generator().manual_seed(1), pixels, 0.08, 0.5, 10.0)
    other = random_view(x, torch.Generator().manual_seed(2), pixels, 0.08, 0.5, 10.0)
    assert first.shape == x.shape and torch.equal(first, again) and not torch.equal(first, other)
    low, high = (p.view(1, 3, 1, 1) for p in pixels)
    assert bool(((first >= low - 1e-5) & (first <= high + 1e-5)).all())


def test_a_grey_image_is_cropped_and_rotated_but_never_distorted_in_colour():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, :, :4] = 1.0  # left half white: a flip would put the white on the right
    view = random_view(x, torch.Generator().manual_seed(0), channel_range(x, torch.arange(64)), 0.5, 0.5, 0.0)
    left, right = view[..., :4].mean(dim=(1, 2, 3)), view[..., 4:].mean(dim=(1, 2, 3))
    assert bool((left >= right).all())  # no view mirrored


@pytest.mark.parametrize(("text", "error", "words"), [
    ("simclrr", UnknownNameError, "simclr"),
    ("simclr:temperature=0", OptionError, "temperature"),
    ("simsiam:epochs=0", OptionError, "epochs"),
    ("simclr:lr=fast", OptionError, "lr"),
    ("simclr:colour=1", OptionError, "colour"),
])
def test_a_bad_method_or_option_is_a_one_line_error(text, error, words):
    with pytest.raises(error) as caught:
        Pretraining(default_registry(), text, "strategy 'supervised'")
    assert words in str(caught.value) and "\n" not in str(caught.value)
