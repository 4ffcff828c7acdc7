"""The shared prefix: pseudo_label's step that trains on its unlabeled batch alone computes the layers
before the first mode-dependent one once, for the pseudo-labels and the loss, with the same numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sslzoo._contract.context import Context
from sslzoo._contract.labels import ORACLE
from sslzoo._contract.ledger import Ledger
from sslzoo._contract.strategy import Batch, Step
from sslzoo._default_plugins import pseudo_label
from sslzoo._default_plugins.pseudo_label import PseudoLabel
from sslzoo._engine.run import Learner, Run, RunSpec
from sslzoo._ops import networks as models
from sslzoo._ops.prefix import SharedPrefix, mode_free_layers

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
    assert shared.shares
    assert list(shared.prefix) == list(model)[:2] and list(shared.rest) == list(model)[2:]
    assert type(shared.prefix) is nn.Sequential and type(shared.rest) is nn.Sequential


@pytest.mark.parametrize("model", [OwnForward(), models.pca_poly_logreg(SHAPE, 10),
                                   nn.Sequential(nn.Dropout(), nn.Flatten(), nn.Linear(28 * 28, 10))])
def test_a_model_without_mode_free_leading_layers_shares_nothing(model):
    assert not SharedPrefix(model, "fp32").shares


def _separate_passes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval-mode softmax (no gradient) and the train-mode logits of ``x``, two whole forward passes."""
    model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=1)
    model.train()
    return probabilities, model(x)


@pytest.mark.parametrize("build", [models.cnn, models.gal_cnn, models.mlp])
def test_the_shared_prefix_gives_the_numbers_of_two_separate_passes_bit_for_bit(build):
    torch.manual_seed(0)
    model = build(SHAPE, 10)
    x = torch.randn(16, *SHAPE)
    torch.manual_seed(1)  # the same dropout masks in both training passes
    probabilities, logits = _separate_passes(model, x)
    logits.sum().backward()
    separate = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    torch.manual_seed(1)
    shared = SharedPrefix(model, "fp32")
    assert shared.shares and model.training
    shared_probabilities = shared.probabilities(x)
    assert not shared_probabilities.requires_grad and model.training  # eval mode for the prediction only
    shared_logits = shared.logits()
    shared_logits.sum().backward()  # the gradient flows through the shared prefix too
    assert torch.equal(shared_probabilities, probabilities) and torch.equal(shared_logits, logits)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), separate))


class Unshared(SharedPrefix):
    """A shared prefix that shares nothing: pseudo_label makes two separate forward passes per step."""

    @property
    def shares(self) -> bool:
        return False


def _pseudo_label_step(strategy: PseudoLabel, model: nn.Module, x: torch.Tensor, labeled: torch.Tensor,
                       unlabeled: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """``strategy``'s loss of one step (as the engine calls it), the gradients it gives and how many times the
    model's first layer ran."""
    ledger = Ledger(x.shape[0], x.device)
    ctx = Context(model=model, x=x, ledger=ledger, generator=torch.Generator().manual_seed(0), num_classes=10,
                  seed=0, precision="fp32")
    batch = Batch(labeled, x[labeled], labeled % 10, torch.ones(labeled.numel()),
                  torch.full((labeled.numel(),), ORACLE, dtype=torch.int8))
    calls = []
    hook = model[0].register_forward_hook(lambda *_: calls.append(1))
    model.zero_grad()
    torch.manual_seed(1)
    try:
        with ctx.training():
            out = strategy.loss(ctx, Step(batch, unlabeled))
        out.loss.backward()
    finally:
        hook.remove()
    return out.loss.detach(), [p.grad.clone() for p in model.parameters()], len(calls)


@pytest.mark.parametrize(("labeled", "threshold", "passes"), [
    (0, 0.0, 1),  # an unlabeled-only step: the prediction and the training pass share the convolutions
    (4, 0.0, 2),  # a joint step trains on more than it predicts
    (0, 0.05, 2),  # with a threshold the training pass is on the kept ids (here all), a pass of its own
])
def test_pseudo_label_shares_the_prefix_only_when_it_trains_on_exactly_what_it_predicts(labeled, threshold, passes,
                                                                                        monkeypatch):
    torch.manual_seed(0)
    model, x = models.cnn(SHAPE, 10), torch.randn(40, *SHAPE)
    strategy = PseudoLabel(t1=0, t2=0, threshold=threshold)  # alpha is alpha_f from the start
    step = (model, x, torch.arange(labeled), torch.arange(8, 40))
    loss, grads, calls = _pseudo_label_step(strategy, *step)
    assert calls == passes
    monkeypatch.setattr(pseudo_label, "SharedPrefix", Unshared)
    unshared_loss, unshared_grads, unshared_calls = _pseudo_label_step(strategy, *step)
    assert unshared_calls == 2 and loss > 0
    assert torch.equal(loss, unshared_loss) and all(torch.equal(a, b) for a, b in zip(grads, unshared_grads))


def _first_conv_calls(strategy: PseudoLabel, precision: str) -> tuple[dict, int]:
    spec = RunSpec(strategy.name, "mnist", labels=100, seed=0, model="cnn", device="cpu",
                   dataset_options={"n_train": 612, "n_test": 200})
    run = Run(spec, strategy)
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
def test_sharing_the_prefix_gives_the_same_records_with_one_convolution_pass_less_per_step(precision, one_thread,
                                                                                           monkeypatch):
    # 100 labels, a pool of 512: 1 warm-up epoch (4 labeled steps of 32), then 2 epochs of 4
    # unlabeled-only steps of 128 with a labeled pass after every 2
    options = {"schedule": "step", "warmup": 1, "epochs": 3, "t1": 0, "t2": 2, "batch_size": 32,
               "unlabeled_batch_size": 128, "labeled_every": 2, "lr": 0.1, "optimizer": "sgd",
               "precision": precision}
    shared, shared_calls = _first_conv_calls(PseudoLabel(**options), precision)
    thresholded, thresholded_calls = _first_conv_calls(PseudoLabel(**options, threshold=0.5), precision)
    with monkeypatch.context() as patch:
        patch.setattr(pseudo_label, "SharedPrefix", Unshared)
        unshared, unshared_calls = _first_conv_calls(PseudoLabel(**options), precision)
    assert shared == unshared
    assert shared["curve"][-1]["pseudo_labels"] == 8 * 128
    assert unshared_calls - shared_calls == 8  # one per unlabeled-only step
    assert thresholded_calls == unshared_calls  # trained on the kept ids only: two forward passes again
    assert thresholded["curve"] != shared["curve"]
