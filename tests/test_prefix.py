"""The shared prefix: a step that trains on its unlabeled batch alone computes the layers before
the first mode-dependent one once, for the pseudo-labels and the loss, with the same numbers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from sslzoo import models
from sslzoo.default_plugins.pseudo_label import PseudoLabel
from sslzoo.engine import Learner, Run, RunSpec
from sslzoo.prefix import SharedPrefix, mode_free_layers
from sslzoo.strategy import Batch

SHAPE = (1, 28, 28)


class SubclassedConv(nn.Conv2d):
    """A subclass may depend on the mode: only the exact built-in types count as mode-free."""


class OwnForward(nn.Sequential):
    """A Sequential subclass with a forward of its own (a skip connection), built without arguments."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(1, 1, 3, padding=1), nn.Dropout(), nn.Conv2d(1, 1, 3, padding=1))

    def forward(self, x):
        return self[2](self[1](self[0](x)) + x)


class NoArguments(nn.Sequential):
    """A Sequential subclass built without arguments (slicing it would call ``NoArguments(OrderedDict)``)."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Dropout(), nn.Flatten(), nn.Linear(2 * 26 * 26, 10))


def hooked(model: nn.Module) -> nn.Module:
    model.register_forward_hook(lambda module, args, out: out)
    return model


@pytest.mark.parametrize(("model", "layers"), [
    (models.cnn(SHAPE, 10), 4),  # conv, pool, relu, conv | Dropout2d
    (models.gal_cnn(SHAPE, 10), 5),  # conv, relu, conv, relu, pool | Dropout
    (models.mlp(SHAPE, 10), 3),  # flatten, linear, relu | Dropout
    (models.linear(SHAPE, 10), 2),  # no mode-dependent layer: all of it
    (models.pca_poly_logreg(SHAPE, 10), 0),  # a fitted feature layer is not a known mode-free type
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), 1),
    (nn.Sequential(SubclassedConv(1, 4, 3), nn.ReLU()), 0),
    (nn.Conv2d(1, 4, 3), 0),  # not a Sequential
    (OwnForward(), 0),  # a Sequential whose forward is its own
    (hooked(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout())), 0),  # a hook on the container
])
def test_the_prefix_ends_at_the_first_layer_that_may_depend_on_the_mode(model, layers):
    assert mode_free_layers(model) == layers


def test_a_sequential_subclass_is_split_into_plain_sequentials_of_its_layers():
    model = NoArguments()
    shared = SharedPrefix(model, "fp32")
    assert list(shared.prefix) == list(model)[:2] and list(shared.rest) == list(model)[2:]
    assert type(shared.prefix) is nn.Sequential and type(shared.rest) is nn.Sequential


def test_a_prediction_shares_the_prefix_only_for_the_armed_batch_and_only_once():
    torch.manual_seed(0)
    model = models.cnn(SHAPE, 10)
    x = torch.randn(50, *SHAPE)
    ids = torch.arange(10, 20)
    shared = SharedPrefix(model, "fp32")
    assert shared.probabilities(ids) is None  # not armed
    shared.arm(x, ids)
    assert shared.probabilities(ids.clone()) is None  # another tensor, even with the same ids
    probs = shared.probabilities(ids)
    model.eval()
    with torch.no_grad():
        assert torch.equal(probs, torch.softmax(model(x[ids]), dim=1))
    model.train()
    batch_x = shared.inputs(x, ids)
    assert batch_x.requires_grad is False and torch.equal(batch_x, x[ids])
    assert shared.logits(batch_x) is not None  # the training forward takes it ...
    assert shared.logits(batch_x) is None  # ... once: the step is released


def test_an_input_changed_in_place_after_the_prediction_is_not_shared():
    model = models.cnn(SHAPE, 10)
    x, ids = torch.randn(8, *SHAPE), torch.arange(4)
    shared = SharedPrefix(model, "fp32")
    shared.arm(x, ids)
    shared.probabilities(ids)
    batch_x = shared.inputs(x, ids)
    batch_x.mul_(2)  # e.g. an augmentation that edits the batch in place
    assert shared.logits(batch_x) is None


class UnsharedRun(Run):
    """The engine with no shared prefix: two separate forward passes per pseudo-labeling step."""

    def fresh_learner(self) -> Learner:
        return dataclasses.replace(super().fresh_learner(), prefix=SharedPrefix(nn.Identity(), self.training.precision))


class Shifted(PseudoLabel):
    """A transform that makes a new input: the training forward cannot start from the prefix."""

    def transform(self, ctx, batch: Batch) -> Batch:
        return Batch(batch.ids, batch.x + 0.01, batch.targets, batch.weights)


def _first_conv_calls(run_class: type[Run], strategy: PseudoLabel, precision: str) -> tuple[dict, int]:
    spec = RunSpec(strategy.name, "mnist", labels=100, seed=0, model="cnn", device="cpu",
                   dataset_options={"n_train": 612, "n_test": 200})
    run = run_class(spec, strategy)
    calls = []
    original = run.fresh_learner

    def counted() -> Learner:
        learner = original()
        learner.model[0].register_forward_hook(lambda *_: calls.append(1))
        return learner

    run.fresh_learner = counted
    record = run.execute()
    record.pop("wall_seconds")
    return record, len(calls)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_sharing_the_prefix_gives_the_same_records_with_one_convolution_pass_less_per_step(precision, one_thread):
    # 100 labels, a pool of 512: 1 warm-up epoch (4 labeled steps of 32), then 2 epochs of 4
    # unlabeled-only steps of 128 with a labeled pass after every 2
    options = {"schedule": "step", "warmup": 1, "epochs": 3, "t1": 0, "t2": 2, "batch_size": 32,
               "unlabeled_batch_size": 128, "labeled_every": 2, "lr": 0.1, "optimizer": "sgd",
               "precision": precision}
    shared, shared_calls = _first_conv_calls(Run, PseudoLabel(**options), precision)
    unshared, unshared_calls = _first_conv_calls(UnsharedRun, PseudoLabel(**options), precision)
    assert shared == unshared
    assert shared["curve"][-1]["pseudo_labels"] == 8 * 128
    assert unshared_calls - shared_calls == 8  # one per unlabeled-only step
    shifted, shifted_calls = _first_conv_calls(Run, Shifted(**options), precision)
    assert shifted_calls == unshared_calls  # transformed inputs: two forward passes again
    assert shifted["curve"] != shared["curve"]
