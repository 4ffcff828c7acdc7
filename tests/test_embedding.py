"""Embeddings in the context: the input of the embedding layer for every built-in model and a custom
one, and the closed-form gradient embedding against autograd's per-sample gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo._ops import inference
from sslzoo._ops.embedding import GradientEmbedding, embedding_layer, embeddings, gradient_embeddings
from sslzoo._ops.features import fit_features
from sslzoo.errors import TrainingError

REGISTRY = Registry(make_plugins(load=""))
BUILT_IN_MODELS = REGISTRY.models.names()


class TwoHeads(nn.Module):
    """A custom forward: a trunk, a 16-unit projection declared as the embedding layer, and a
    softmax head after a ReLU (so layers follow the embedding layer)."""

    embedding_layer = "project"

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(12, 24), nn.Tanh())
        self.project = nn.Linear(24, 16)
        self.head = nn.Linear(16, 3)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(F.relu(self.project(self.trunk(x)))))


def built(name: str) -> tuple[nn.Module, torch.Tensor]:
    """Model ``name`` with random weights and 6 random inputs of its dataset's shape."""
    torch.manual_seed(0)
    shape = (2,) if name.startswith("moons") else (1, 28, 28)
    model = REGISTRY.models.get(name).obj.build(shape, 10 if len(shape) == 3 else 2)
    x = torch.randn(64 if name.startswith("pca_poly") else 6, *shape)  # the PCA needs 50 samples
    fit_features(model, x)
    return model, x[:6]


def input_of(layer: nn.Module, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = layer.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    return seen[0].flatten(1)


def per_sample_weight_gradients(model: nn.Module, x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """(N, C·D): autograd's gradient of each sample's loss for its predicted label w.r.t. ``layer.weight``."""
    model.eval()
    sigmoid = inference.output_activation(model) == "sigmoid"
    rows = []
    for i in range(x.shape[0]):
        model.zero_grad()
        logits = model(x[i:i + 1])
        target = logits.argmax(1)
        if sigmoid:
            onehot = F.one_hot(target, logits.shape[1]).float()
            loss = F.binary_cross_entropy_with_logits(logits, onehot, reduction="sum")
        else:
            loss = F.cross_entropy(logits, target)
        loss.backward()
        rows.append(layer.weight.grad.flatten().clone())
    return torch.stack(rows)


@pytest.mark.parametrize("name", BUILT_IN_MODELS)
def test_embedding_is_the_input_of_the_last_linear_layer_of_each_built_in_model(name):
    model, x = built(name)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert embedding_layer(model) is last
    got = embeddings(model, x, torch.arange(6), chunk=4)
    torch.testing.assert_close(got, input_of(last, model, x), rtol=1e-5, atol=1e-6)  # chunks of 4 and 2
    assert got.shape == (6, last.in_features) and got.dtype == torch.float32


@pytest.mark.parametrize("name", BUILT_IN_MODELS)
def test_gradient_embedding_equals_autograds_per_sample_gradients(name):
    model, x = built(name)
    layer = embedding_layer(model)
    got = gradient_embeddings(model, x, torch.arange(6), chunk=4)
    expected = per_sample_weight_gradients(model, x, layer)
    torch.testing.assert_close(got.dense(), expected, rtol=1e-4, atol=1e-6)
    assert all(p.requires_grad for p in model.parameters())


def test_a_custom_model_declares_its_embedding_layer_and_layers_after_it_are_differentiated():
    torch.manual_seed(1)
    model, x = TwoHeads(), torch.randn(7, 3, 4)
    assert embedding_layer(model) is model.project
    assert torch.equal(embeddings(model, x, torch.arange(7)), input_of(model.project, model, x))
    grads = gradient_embeddings(model, x, torch.arange(7), chunk=3)
    torch.testing.assert_close(grads.dense(), per_sample_weight_gradients(model, x, model.project), rtol=1e-4,
                               atol=1e-6)
    assert grads.a.shape == (7, 16) and grads.h.shape == (7, 24)


def test_embeddings_are_taken_with_dropout_off_and_leave_the_modes_as_they_were():
    model, x = TwoHeads().train(), torch.randn(5, 3, 4)
    first = embeddings(model, x, torch.arange(5))
    assert torch.equal(first, embeddings(model, x, torch.arange(5)))
    assert model.training and model.drop.training


def test_a_declared_embedding_layer_that_does_not_exist_or_is_not_linear_is_a_clear_error():
    model = TwoHeads()
    model.embedding_layer = "projection"
    with pytest.raises(TrainingError, match="embedding_layer='projection', which names none of its modules"):
        embeddings(model, torch.randn(2, 3, 4), torch.arange(2))
    model.embedding_layer = "trunk.2"  # the Tanh: its input embeds, but it has no weight
    assert embeddings(model, torch.randn(2, 3, 4), torch.arange(2)).shape == (2, 24)
    with pytest.raises(TrainingError, match="embedding layer is a Tanh"):
        gradient_embeddings(model, torch.randn(2, 3, 4), torch.arange(2))


def test_factored_inner_products_and_distances_are_those_of_the_dense_gradients():
    torch.manual_seed(2)
    g = GradientEmbedding(torch.randn(9, 4, dtype=torch.float64), torch.randn(9, 5, dtype=torch.float64))
    dense, rows = g.dense(), torch.tensor([0, 3, 7])
    torch.testing.assert_close(g.inner(rows), dense @ dense[rows].T)
    torch.testing.assert_close(g.sq_norms(), dense.square().sum(1))
    torch.testing.assert_close(g.sq_distances(rows), torch.cdist(dense, dense[rows]).square())
    assert (g.sq_distances(torch.arange(9)).diagonal().abs() < 1e-12).all()


def test_bf16_precision_gives_float32_embeddings_close_to_fp32():
    model, x = built("mlp")
    fp32 = embeddings(model, x, torch.arange(6), precision="fp32")
    bf16 = embeddings(model, x, torch.arange(6), precision="bf16")
    assert bf16.dtype == torch.float32
    torch.testing.assert_close(bf16, fp32, rtol=0.05, atol=0.05)
