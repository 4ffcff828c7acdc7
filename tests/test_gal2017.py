"""Gal, Islam & Ghahramani (2017) as its Keras code trains: the 4x4-kernel network with Keras's
initialisation (``gal_cnn_keras``), Keras's Adam with the c/N penalty (``keras_adam_l2_hidden``) and
the gal2017-mnist presets that use them.

The Keras side is ported here from the Keras 0.x of the published scripts (``show_accuracy=True``,
``Convolution2D(nb_filter, nb_row, nb_col)``, Theano ordering): ``initializations.get_fans`` and
``glorot_uniform``, and ``optimizers.Adam.get_updates``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sslzoo import create_model
from sslzoo._contract.strategy import TrainOptions
from sslzoo._default_plugins.recipes import KERAS_ADAM_L2_HIDDEN
from sslzoo._engine.training import make_optimizer, resolve_training
from sslzoo._planning.preset import get_preset

# The Keras model of the paper's description, as (layer, Keras weight shape in Theano ordering, output shape):
# Convolution2D(32, 4, 4, border_mode='valid', input_shape=(1, 28, 28)), Activation('relu'),
# Convolution2D(32, 4, 4), Activation('relu'), MaxPooling2D((2, 2)), Dropout(0.25), Flatten(),
# Dense(128), Activation('relu'), Dropout(0.5), Dense(10), Activation('softmax').
KERAS_LAYERS = [
    ("conv", (32, 1, 4, 4), (32, 25, 25)), ("relu", None, (32, 25, 25)),
    ("conv", (32, 32, 4, 4), (32, 22, 22)), ("relu", None, (32, 22, 22)),
    ("pool", None, (32, 11, 11)), ("dropout", None, (32, 11, 11)), ("flatten", None, (3872,)),
    ("dense", (3872, 128), (128,)), ("relu", None, (128,)), ("dropout", None, (128,)),
    ("dense", (128, 10), (10,)),
]
KERAS_PARAMS = 544 + 16_416 + 495_744 + 1290  # model.count_params() of that model


def keras_get_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras 0.x ``initializations.get_fans``: a Dense kernel is (input_dim, output_dim), a conv kernel
    (nb_filter, stack_size, rows, cols)."""
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def keras_glorot_limit(shape: tuple[int, ...]) -> float:
    """Keras 0.x ``glorot_uniform``: ``uniform(shape, sqrt(6 / (fan_in + fan_out)))``."""
    fan_in, fan_out = keras_get_fans(shape)
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_gal_cnn_keras_has_the_keras_models_layer_shapes_and_parameter_count():
    model = create_model("gal_cnn_keras", (1, 28, 28), 10)
    assert len(model) == len(KERAS_LAYERS)
    h = torch.zeros(2, 1, 28, 28)
    for layer, (kind, weight, out) in zip(model, KERAS_LAYERS):
        h = layer(h)
        assert tuple(h.shape[1:]) == out, kind
        if weight is not None:  # torch keeps a Dense kernel as (out, in): Keras's transposed
            assert tuple(layer.weight.shape) == (weight if kind == "conv" else weight[::-1])
    assert sum(p.numel() for p in model.parameters()) == KERAS_PARAMS


def test_gal_cnn_keras_draws_glorot_uniform_weights_within_the_keras_limit_and_zero_biases():
    torch.manual_seed(0)
    model = create_model("gal_cnn_keras", (1, 28, 28), 10)
    weighted = [(layer, weight) for layer, (_, weight, _) in zip(model, KERAS_LAYERS) if weight is not None]
    assert len(weighted) == 4
    for layer, keras_shape in weighted:
        limit = keras_glorot_limit(keras_shape)
        w = layer.weight.detach()
        assert float(w.abs().max()) <= limit
        assert float(w.abs().max()) > 0.9 * limit  # the whole range is used, not a narrower one
        assert float(w.std()) == pytest.approx(limit / math.sqrt(3), rel=0.1)  # uniform's std
        assert not layer.bias.detach().any()
    assert keras_glorot_limit((32, 1, 4, 4)) == pytest.approx(math.sqrt(6 / 528))
    # PyTorch's own init of that conv (Kaiming uniform on ±1/sqrt(16)) goes past the limit
    assert float(nn.Conv2d(1, 32, 4).weight.detach().abs().max()) > keras_glorot_limit((32, 1, 4, 4))


def _keras_adam_l2_steps(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, l2: float, steps: int,
                         lr: float = 1e-3) -> list[torch.Tensor]:
    """The Keras 0.x of the published scripts: ``Dense(..., W_regularizer=l2(c / N))`` on the hidden
    layer (its penalty ``l2 * sum(W ** 2)`` added to the loss) and ``Adam.get_updates`` with its
    defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-8)."""
    params = [p.detach().clone() for p in model.parameters()]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        leaves = [p.clone().requires_grad_(True) for p in params]
        hidden_w, hidden_b, out_w, out_b = leaves
        logits = torch.relu(x @ hidden_w.T + hidden_b) @ out_w.T + out_b
        loss = nn.functional.cross_entropy(logits, y) + l2 * (hidden_w ** 2).sum()
        grads = torch.autograd.grad(loss, leaves)
        lr_t = lr * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + (1 - 0.9) * g
            v[i] = 0.999 * v[i] + (1 - 0.999) * g ** 2
            params[i] = params[i] - lr_t * m[i] / (torch.sqrt(v[i]) + 1e-8)
    return params


def test_keras_adam_l2_hidden_steps_as_keras_adam_with_the_c_over_n_penalty_on_the_hidden_dense_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x, y = torch.randn(35, 6, dtype=torch.float64), torch.randint(0, 3, (35,))
    expected = _keras_adam_l2_steps(model, x, y, l2=3.5 / 35, steps=5)
    options = TrainOptions(epochs=1, batch_size=35, lr=1e-3, optimizer="adam", weight_decay=7.0,
                           recipe=KERAS_ADAM_L2_HIDDEN.name)
    training = resolve_training(options, {}, KERAS_ADAM_L2_HIDDEN, "strategy 'test'")
    optimizer = make_optimizer(model, training, 35)  # Keras's l2(3.5/N) is weight_decay 7.0/N here
    for _ in range(5):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    for got, want in zip(model.parameters(), expected):
        torch.testing.assert_close(got.detach(), want, rtol=1e-9, atol=1e-12)


def test_gal2017_presets_cut_the_last_batch_evenly_and_the_faithful_one_trains_as_keras_on_unit_pixels():
    base, faithful = get_preset("gal2017-mnist"), get_preset("gal2017-mnist-faithful")
    assert base.options["last_batch"] == "even" and base.model == "gal_cnn"
    assert faithful.extends == base.name
    assert faithful.model == "gal_cnn_keras" and faithful.dataset_options == {"scale": "unit"}
    assert faithful.options["recipe"] == "keras_adam_l2_hidden"
    assert {k: v for k, v in faithful.options.items() if k != "recipe"} == \
        {k: v for k, v in base.options.items() if k != "recipe"}
    assert faithful.variant("ci").dataset_options == {"scale": "unit", "n_train": 3000, "n_test": 300}
