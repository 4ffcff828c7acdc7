"""HintonDropout (sslzoo._ops.layers): dropout in its original form, kept units unscaled in training and
every unit scaled by the keep rate at test time, made stochastic by MC-dropout like torch's own."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import sslzoo
from sslzoo._ops import inference
from sslzoo._ops.dropout import StochasticDropout
from sslzoo._ops.layers import HintonDropout


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_training_keeps_units_unscaled_and_test_time_scales_them_by_the_keep_rate(p):
    torch.manual_seed(0)
    x = torch.rand(64, 500) + 0.5
    layer = HintonDropout(p)
    out = layer(x)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept], rtol=1e-6, atol=0.0)  # not x / (1 - p)
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / x.numel())
    layer.eval()
    torch.testing.assert_close(layer(x), x * (1 - p), rtol=0.0, atol=0.0)


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_the_training_outputs_expectation_is_the_test_time_output(p):
    torch.manual_seed(1)
    x = torch.rand(1, 200) + 0.5
    layer = HintonDropout(p)
    passes = 4000
    mean = layer(x.expand(passes, -1)).mean(dim=0)
    layer.eval()
    se = x * math.sqrt(p * (1 - p) / passes)
    assert ((mean - layer(x)[0]).abs() / se).max() < 5
    inverted = nn.Dropout(p)(x.expand(passes, -1)).mean(dim=0)  # torch's form: the expectation is x
    assert ((inverted - layer(x)[0]).abs() / se).min() > 5


def test_mc_dropout_passes_compute_the_training_form():
    x = torch.rand(32, 300) + 0.5
    with StochasticDropout(torch.Generator().manual_seed(2)):
        out = HintonDropout(0.5).eval()(x)  # stochastic whatever the mode, as torch's dropout layers
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept], rtol=0.0, atol=0.0)
    assert 0.45 < kept.float().mean().item() < 0.55


def test_lee_mlp_uses_it_and_mc_dropout_caches_the_layers_before_it():
    model = sslzoo.create_model("lee_mlp", (1, 28, 28), 10)
    assert type(model[3]) is HintonDropout and model[3].p == 0.5
    with_inputs = sslzoo.create_model("lee_mlp_input_dropout", (1, 28, 28), 10)
    assert [type(m) for m in with_inputs[:2]] == [nn.Flatten, HintonDropout] and with_inputs[1].p == 0.2
    prefix, rest = inference.split_at_dropout(model, torch.rand(1, 1, 28, 28))
    assert prefix == list(model[:3]) and rest == list(model[3:])
