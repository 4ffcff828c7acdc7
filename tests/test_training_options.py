"""Training options every strategy has and the recipes that add to them: learning-rate and momentum
schedules, where the L2 penalty applies and how it scales, sigmoid-output models, and the split that
holds ids out."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sslzoo import create_dataset, create_model, create_strategy, run
from sslzoo._contract.labels import HELD_OUT
from sslzoo._contract.recipe import BUILT_IN, Recipe, upgrade_options
from sslzoo._contract.strategy import TrainOptions, weighted_cross_entropy
from sslzoo._engine.run import Run, RunSpec
from sslzoo._engine.training import Training, make_optimizer, resolve_training, schedule_epoch
from sslzoo.errors import OptionError, UnknownNameError

RECIPES = {recipe.name: recipe for recipe in BUILT_IN}


def _options(recipe: Recipe = RECIPES["default"], **given) -> Training:
    base = {"epochs": 1, "batch_size": 8, "lr": 1.5, "optimizer": "sgd", "momentum": 0.99, "weight_decay": 0.0}
    return resolve_training(TrainOptions(**{**base, **given, "recipe": recipe.name}), {}, recipe, "strategy 'test'")


def test_lr_decays_each_epoch_and_momentum_rises_linearly_to_its_final_value():
    model = create_model("lee_mlp", (1, 28, 28), 10)
    opts = _options(RECIPES["hinton2012"], lr_decay=0.998)
    optimizer = make_optimizer(model, opts, 100)
    seen = {}
    for epoch in (0, 1, 250, 499, 500, 799):
        schedule_epoch(optimizer, opts, epoch)
        seen[epoch] = (optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"])
    assert seen[0] == (1.5, 0.5)
    assert seen[1][0] == pytest.approx(1.5 * 0.998) and seen[1][1] == pytest.approx(0.5 + 0.49 / 500)
    assert seen[250][1] == pytest.approx(0.745)
    assert seen[500][1] == seen[799][1] == 0.99
    assert seen[799][0] == pytest.approx(1.5 * 0.998 ** 799)
    assert optimizer.param_groups[0]["dampening"] == 0.99  # hinton2012 dampens by the momentum of the moment
    plain = _options(lr_decay=0.998)
    schedule_epoch(optimizer, plain, 0)
    assert optimizer.param_groups[0]["momentum"] == 0.99 and optimizer.param_groups[0]["dampening"] == 0.0


def test_fixmatch_cosine_decays_the_lr_to_cos_7pi_16_over_the_rounds_epochs():
    model = create_model("lee_mlp", (1, 28, 28), 10)
    opts = _options(lr_schedule="fixmatch_cosine", epochs=1024, nesterov=True)
    optimizer = make_optimizer(model, opts, 100)
    assert optimizer.param_groups[0]["nesterov"] is True
    seen = {}
    for epoch in (0, 512, 1023):
        schedule_epoch(optimizer, opts, epoch)
        seen[epoch] = optimizer.param_groups[0]["lr"]
    # Sohn et al. 2020: eta · cos(7 pi k / 16 K), USB's get_cosine_schedule_with_warmup without warm-up
    assert seen[0] == 1.5 and seen[512] == pytest.approx(1.5 * math.cos(7 * math.pi / 32))
    assert seen[1023] == pytest.approx(1.5 * math.cos(7 * math.pi * 1023 / (16 * 1024)))


@pytest.mark.parametrize(("given", "fragment"), [
    ({"nesterov": True, "optimizer": "adam"}, "option nesterov of strategy .test. needs optimizer=sgd"),
    ({"nesterov": True, "momentum": 0.0}, "a momentum above 0, got optimizer=sgd, momentum=0.0"),
    ({"lr_schedule": "fixmatch_cosine", "lr_decay": 0.99}, "sets the decay itself and needs lr_decay=1"),
])
def test_nesterov_and_the_cosine_refuse_what_they_cannot_work_with(given, fragment):
    with pytest.raises(OptionError, match=fragment):
        _options(**given)


def test_momentum_dampening_scales_the_gradient_by_one_minus_the_momentum():
    weight = torch.nn.Parameter(torch.zeros(1))
    model = torch.nn.Module()
    model.weight = weight
    opts = _options(Recipe("dampened", "", momentum_dampening=True), lr=1.0, momentum=0.9)
    optimizer = make_optimizer(model, opts, 1)
    schedule_epoch(optimizer, opts, 0)
    for _ in range(2):
        weight.grad = torch.ones(1)
        optimizer.step()
    # torch starts the velocity at the first gradient: v1 = 1, v2 = 0.9 · 1 + 0.1 · 1 = 1
    assert float(weight.detach()) == pytest.approx(-2.0)
    assert optimizer.param_groups[0]["dampening"] == 0.9


def test_weight_decay_on_hidden_dense_layers_scaled_by_one_over_n_penalises_only_those_weights():
    model = create_model("gal_cnn", (1, 28, 28), 10)
    optimizer = make_optimizer(model, _options(RECIPES["keras_l2_hidden"], optimizer="adam", lr=1e-3,
                                               weight_decay=7.0), 350)
    penalised = [g for g in optimizer.param_groups if g["weight_decay"] > 0]
    assert len(penalised) == 1 and penalised[0]["weight_decay"] == pytest.approx(0.02)
    assert [p.shape for p in penalised[0]["params"]] == [model[7].weight.shape]  # the dense 128 layer's kernel
    others = sum(p.numel() for g in optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"])
    assert others == sum(p.numel() for p in model.parameters()) - model[7].weight.numel()


def test_a_momentum_recipe_needs_sgd_and_a_ramp():
    with pytest.raises(OptionError, match="recipe 'hinton2012' of strategy 'supervised' sets momentum_start and "
                                          "needs optimizer=sgd"):
        run("supervised", "moons", labels=10, options={"epochs": 1, "recipe": "hinton2012"})
    with pytest.raises(OptionError, match="recipe 'dampened' .* sets momentum_dampening and needs optimizer=sgd"):
        _options(Recipe("dampened", "", momentum_dampening=True), optimizer="adam")
    with pytest.raises(OptionError, match="momentum_epochs of at least 1"):
        _options(Recipe("no_ramp", "", momentum_start=0.5))


def test_an_unknown_recipe_names_the_close_ones():
    with pytest.raises(UnknownNameError, match="unknown recipe 'hinton'; did you mean hinton2012"):
        run("supervised", "moons", labels=10, options={"epochs": 1, "recipe": "hinton"})


def test_the_reproduction_options_are_recipes_not_training_options():
    with pytest.raises(OptionError, match="has no option 'adam_epsilon'"):
        create_strategy("supervised", adam_epsilon="hat")


def test_sigmoid_outputs_sum_the_binary_cross_entropies_of_the_units():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    targets = torch.tensor([0, 1])
    weights = torch.tensor([1.0, 0.5])
    onehot = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    by_hand = -(onehot * torch.sigmoid(logits).log() + (1 - onehot) * (1 - torch.sigmoid(logits)).log()).sum(1)
    sigmoid = weighted_cross_entropy(logits, targets, weights, "sigmoid")
    assert sigmoid == pytest.approx(float((by_hand * weights).mean()))
    softmax = weighted_cross_entropy(logits, targets, torch.ones(2))  # softmax unless told
    assert softmax == pytest.approx(float(F.cross_entropy(logits, targets)))
    assert softmax == weighted_cross_entropy(logits, targets, torch.ones(2), "softmax")


def test_lee_mlp_declares_sigmoid_outputs_and_the_engine_trains_it_with_them():
    model = create_model("lee_mlp", (1, 28, 28), 10)
    assert model.output_activation == "sigmoid" and model[1].out_features == 5000
    job = Run(RunSpec("supervised", "mnist", labels=100, model="lee_mlp", options={"epochs": 2},
                      dataset_options={"n_train": 1000, "n_test": 200}), create_strategy("supervised", epochs=2))
    record = job.execute()
    assert job.learner.activation == "sigmoid" and record["test_accuracy"] > 0.5


def test_the_gal2017_split_holds_ids_out_of_the_pool_and_training():
    options = {"epochs": 1, "budget": 40, "query_size": 10}
    job = Run(RunSpec("random", "mnist", labels=20, split="gal2017", seed=0, model="linear", options=options,
                      dataset_options={"n_train": 3000, "n_test": 200}), create_strategy("random", **options))
    job.execute()
    held = (job.data.ledger.source == HELD_OUT).nonzero().flatten()
    assert held.numel() == 3000 - 2000 - 20
    assert job.data.ledger.pool().numel() == 2000 - 20 and not torch.isin(held, job.data.ledger.train()).any()



def test_l2_scaling_gives_each_mnist_image_unit_norm():
    mnist = create_dataset("mnist", scale="l2", n_train=50, n_test=10)
    x = mnist.normalize(mnist.load(0).x_train)
    assert torch.allclose(x.flatten(1).norm(dim=1), torch.ones(50))


LEGACY_DEFAULTS = {"adam_epsilon": "algorithm1", "weight_decay_on": "all", "weight_decay_scale": "none",
                   "momentum_start": None, "momentum_epochs": 0, "momentum_dampening": False, "patience_start": False}


@pytest.mark.parametrize("legacy, recipe", [
    ({}, "default"),
    ({"momentum_start": 0.5, "momentum_epochs": 500, "momentum_dampening": True}, "hinton2012"),
    ({"adam_epsilon": "hat", "patience_start": True}, "keras_adam"),
    ({"weight_decay_on": "hidden_dense", "weight_decay_scale": "1/n"}, "keras_l2_hidden"),
])
def test_a_record_made_before_recipes_reads_as_its_recipe(legacy, recipe):
    options = {"epochs": 3, "lr": 0.1, **LEGACY_DEFAULTS, **legacy}
    assert upgrade_options(options) == {"epochs": 3, "lr": 0.1, "recipe": recipe}


def test_settings_that_no_recipe_holds_stay_as_they_were():
    odd = {"epochs": 3, **LEGACY_DEFAULTS, "adam_epsilon": "hat"}
    assert upgrade_options(odd) == odd
    assert upgrade_options({"epochs": 3, "recipe": "default"}) == {"epochs": 3, "recipe": "default"}
