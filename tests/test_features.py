"""Fitted feature layers: the PCA + polynomial features of ``pca_poly_logreg``, fitted on the training set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.run import Run, RunSpec
from sslzoo._ops.features import PcaPolynomial, fit_features
from sslzoo.errors import TrainingError


def test_pca_axes_span_the_top_principal_subspace():
    torch.manual_seed(0)
    x = torch.randn(500, 1, 6, 6) * torch.linspace(0.1, 3.0, 36).view(1, 1, 6, 6) + 1.0
    layer = PcaPolynomial(36, components=5)
    layer.fit(x)
    z = F.normalize(x.flatten(1), dim=1).double()
    centred = z - z.mean(0)
    _, _, vt = torch.linalg.svd(centred, full_matrices=False)
    top = vt[:5].T
    axes = layer.axes.double()
    assert torch.allclose(axes.T @ axes, torch.eye(5, dtype=torch.double), atol=1e-5)
    # the same subspace as the SVD's top 5 right singular vectors (signs may differ)
    assert torch.allclose(axes @ axes.T, top @ top.T, atol=1e-4)


def test_polynomial_features_are_bias_linear_and_pairwise_products():
    layer = PcaPolynomial(784, components=50)
    assert layer.out_features == 1326  # 1 + 50 + 50 * 51 / 2, as PolynomialFeatures(2) on 50 inputs
    layer.fit(torch.rand(200, 1, 28, 28))
    x = torch.rand(3, 1, 28, 28)
    out = layer(x)
    z = (F.normalize(x.flatten(1), dim=1) - layer.mean) @ layer.axes
    assert out.shape == (3, 1326)
    assert torch.equal(out[:, 0], torch.ones(3)) and torch.allclose(out[:, 1:51], z)
    assert torch.allclose(out[:, 51], z[:, 0] ** 2) and torch.allclose(out[:, 52], z[:, 0] * z[:, 1])
    assert torch.allclose(out[:, -1], z[:, 49] ** 2)


def test_the_engine_fits_the_features_on_the_training_set_only():
    spec = RunSpec(strategy="supervised", dataset="mnist", labels=100, model="pca_poly_logreg", device="cpu",
                   options={"epochs": 1}, dataset_options={"n_train": 1000, "n_test": 200, "scale": "unit"})
    job = Run(spec, create_strategy("supervised", epochs=1))
    job.execute()
    train = job.inputs[0][job.data.ledger.train()]
    assert job.data.ledger.train().numel() == 100
    expected = F.normalize(train.flatten(1), dim=1).mean(0)
    assert torch.allclose(job.features[0].mean, expected, atol=1e-6)


def test_too_few_training_samples_for_the_pca_is_a_clear_error():
    with pytest.raises(TrainingError, match="PCA to 50 components needs at least that many training samples"):
        PcaPolynomial(784, components=50).fit(torch.rand(20, 1, 28, 28))


def test_a_fitted_layer_nested_in_another_module_is_a_clear_error():
    model = nn.Sequential(nn.Sequential(PcaPolynomial(784, components=5)), nn.Linear(21, 10))
    with pytest.raises(TrainingError, match="must be direct layers of an nn.Sequential model"):
        fit_features(model, torch.rand(20, 1, 28, 28))


def test_fit_features_initial_labels_fits_every_round_on_the_initial_labeled_set_only():
    options = {"epochs": 1, "criterion": "k_best", "k_best": 200, "max_rounds": 2}
    spec = RunSpec(strategy="self_training", dataset="mnist", labels=100, model="pca_poly_logreg", device="cpu",
                   dataset_options={"n_train": 1000, "n_test": 200, "scale": "unit"})
    means = {}
    for fit_on in ("training_set", "initial_labels"):
        job = Run(spec, create_strategy("self_training", fit_features=fit_on, **options))
        job.execute()
        assert job.data.ledger.pseudo().numel() == 400
        means[fit_on] = job.features[0].mean
        pixels = job.inputs[0]
        initial = F.normalize(pixels[job.data.ledger.oracle()].flatten(1), dim=1).mean(0)
        trained = F.normalize(pixels[job.data.ledger.train()].flatten(1), dim=1).mean(0)
        assert torch.allclose(job.features[0].mean, trained if fit_on == "training_set" else initial, atol=1e-6)
    assert not torch.allclose(means["training_set"], means["initial_labels"], atol=1e-4)


def test_standardized_polynomial_features_have_zero_mean_and_unit_variance_on_the_fit_set():
    torch.manual_seed(0)
    x = torch.rand(400, 1, 6, 6)
    layer = PcaPolynomial(36, components=5, standardize=True)
    layer.fit(x[:300])
    out = layer(x[:300]).double()
    assert torch.allclose(out[:, 0], torch.zeros(300, dtype=torch.float64))  # the constant 1 becomes 0
    assert torch.allclose(out[:, 1:].mean(0), torch.zeros(20, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(out[:, 1:].std(0, unbiased=False), torch.ones(20, dtype=torch.float64), atol=1e-4)
    plain = PcaPolynomial(36, components=5)
    plain.fit(x[:300])
    assert torch.allclose(layer(x[300:]), (plain(x[300:]) - layer.shift) / layer.scale)


def test_the_fitted_features_are_computed_once_per_fit_not_per_batch(monkeypatch):
    """With ``fit_features=initial_labels`` every round's fit is the same: the features of every input
    are computed once in the run and the steps train the linear layer on them; the model on the
    features gives what the whole pipeline gives on the pixels."""
    calls = {"fit": 0, "forward": 0}
    fit, forward = PcaPolynomial.fit, PcaPolynomial.forward

    def counted_fit(self, x):
        calls["fit"] += 1
        return fit(self, x)

    def counted_forward(self, x):
        calls["forward"] += 1
        return forward(self, x)

    monkeypatch.setattr(PcaPolynomial, "fit", counted_fit)
    monkeypatch.setattr(PcaPolynomial, "forward", counted_forward)
    spec = RunSpec(strategy="self_training", dataset="mnist", labels=100, model="pca_poly_std_logreg", device="cpu",
                   dataset_options={"n_train": 1000, "n_test": 200, "scale": "unit"})
    options = {"epochs": 2, "batch_size": 16, "criterion": "k_best", "k_best": 100, "max_rounds": 2,
               "fit_features": "initial_labels"}
    job = Run(spec, create_strategy("self_training", **options))
    job.execute()
    assert calls == {"fit": 1, "forward": 2}  # the training inputs and the test inputs, once each
    assert job.data.x.shape == (1000, 1326) and job.ctx.x is job.data.x
    whole = nn.Sequential(job.features, job.learner.model)
    with torch.no_grad():
        assert torch.allclose(whole(job.inputs[1]), job.learner.model(job.data.x_test), atol=1e-5)
