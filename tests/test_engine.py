"""The engine: real training, determinism, provenance, and runs that must stop loudly."""

from __future__ import annotations

import dataclasses
import statistics

import pytest
import torch

from sslzoo import hookimpl, run
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.recipe import Recipe
from sslzoo._contract.registry import Registry
from sslzoo._contract.strategy import Strategy, TrainOptions
from sslzoo._engine.run import Run, RunSpec
from sslzoo._engine.training import Training
from sslzoo.errors import DataError, OptionError, TrainingError

MOONS = {"labels": 20, "options": {"epochs": 100}}


def _without_wall_time(record):
    return {k: v for k, v in record.items() if k != "wall_seconds"}


def test_supervised_learns_two_moons_from_a_handful_of_labels():
    records = run("supervised", "moons", seeds=3, **MOONS)
    mean = statistics.fmean(r["test_accuracy"] for r in records)
    # a linear boundary gets ~0.85; chance is 0.5; the 2-10-10-10-2 MLP bends the boundary
    assert mean >= 0.88, [r["test_accuracy"] for r in records]


def test_same_seed_gives_identical_records():
    first, second = (run("supervised", "moons", seed=4, **MOONS)[0] for _ in range(2))
    assert _without_wall_time(first) == _without_wall_time(second)
    other = run("supervised", "moons", seed=5, **MOONS)[0]
    assert _without_wall_time(other) != _without_wall_time(first)


def test_record_carries_what_reproduces_it():
    record = run("supervised", "moons", labels=10, options={"epochs": 2})[0]
    assert record["strategy"] == "supervised"
    assert record["options"]["epochs"] == 2 and record["options"]["optimizer"] == "adam"
    assert record["dataset_options"] == {"n_train": 1000, "n_test": 1000, "noise": 0.1}
    assert record["model"] == "moons_mlp" and record["device"] == "cpu"
    assert record["labels"] == record["oracle_labels"] == 10
    assert record["versions"]["plugins"][0]["distribution"] == "sslzoo"
    assert set(record["curve"][0]) >= {"labels", "test_accuracy", "pseudo_labels", "pseudo_accuracy"}
    assert 0.0 <= record["test_accuracy"] <= 1.0


class NanAtStep(Strategy):
    name = "nan_at_step"
    family = "baseline"

    def loss(self, ctx, step):
        value = super().loss(ctx, step)
        return value * torch.where(torch.tensor(ctx.step == 5), torch.tensor(float("nan")), torch.tensor(1.0))


class TestPlugin:
    @hookimpl
    def register_strategies(self, register):
        register(NanAtStep)


@pytest.fixture
def registry():
    return Registry(make_plugins(load="", extra=(TestPlugin(),)))


def test_nan_loss_stops_the_run_naming_strategy_round_and_step(registry):
    with pytest.raises(TrainingError, match=r"'nan_at_step' is not finite at round 0, epoch 1, step 5"):
        run("nan_at_step", "moons", labels=200, options={"epochs": 3, "batch_size": 16}, registry=registry)


def test_initial_labels_are_oracle_labels_of_round_zero():
    spec = RunSpec("supervised", "moons", labels=8, options={})
    job = Run(spec, Registry(make_plugins(load="")).strategies.get("supervised").obj(epochs=1))
    job.execute()
    labeled = job.data.ledger.oracle()
    assert labeled.numel() == 8
    assert (job.data.ledger.round[labeled] == 0).all()
    assert job.data.ledger.pool().numel() == 1000 - 8


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"labels": 5000}, OptionError, "larger than"),
    ({"labels": -3}, OptionError, "positive"),
    ({"labels": 10, "exclude_classes": (0, 1)}, OptionError, "every class"),
    ({"labels": 10, "device": "tpu"}, OptionError, "auto, cpu, cuda"),
])
def test_impossible_requests_fail_with_a_clear_message(kwargs, error, message):
    with pytest.raises(error, match=message):
        run("supervised", "moons", options={"epochs": 1}, **kwargs)


def test_class_balanced_request_that_cannot_be_met_names_the_class():
    with pytest.raises(DataError, match="class"):
        run("supervised", "moons", labels=1001, dataset_options={"n_train": 1001}, options={"epochs": 1})


@pytest.mark.slow
def test_left_out_class_is_absent_from_the_initial_labels():
    spec = RunSpec("supervised", "mnist", labels=90, exclude_classes=(7,))
    job = Run(spec, Registry(make_plugins(load="")).strategies.get("supervised").obj(epochs=1))
    job.execute()
    ids = job.data.ledger.oracle()
    assert ids.numel() == 90
    assert not job.judge.correct(ids, torch.full_like(ids, 7)).any()


def test_patience_stops_early_and_keeps_the_best_test_accuracy():
    """With ``patience`` N the round ends after N epochs without a better test accuracy and the model
    is the best epoch's (the per-epoch accuracies are traced by a run with ``eval_every=1``)."""
    kwargs = dict(dataset="moons", labels=10, seed=0, dataset_options={"n_train": 300, "n_test": 300})
    options = {"epochs": 200, "lr": 0.1, "eval_every": 1}
    (traced,) = run("supervised", **kwargs, options=options)
    per_epoch = [e["test_accuracy"] for e in traced["curve"]]
    best_epoch = 1
    for epoch, accuracy in enumerate(per_epoch, start=1):
        if accuracy > per_epoch[best_epoch - 1]:
            best_epoch = epoch
        if epoch - best_epoch >= 5:
            break
    assert epoch < 200 and per_epoch[epoch - 1] < per_epoch[best_epoch - 1]  # the case is not trivial
    (stopped,) = run("supervised", **kwargs, options={**options, "eval_every": 0, "patience": 5})
    final = stopped["curve"][-1]
    assert final["best_epoch"] == best_epoch
    assert final["test_accuracy"] == per_epoch[best_epoch - 1]


class StartCompetes:
    """A plugin with a recipe that sets patience_start alone."""

    @staticmethod
    @hookimpl
    def register_recipes(register):
        register(Recipe("start_competes", "early stopping's first candidate is the start", patience_start=True))


def test_patience_start_lets_a_round_keep_the_weights_it_started_from():
    """With ``patience_start`` the weights a round starts from are the first candidate: a warm-started
    round that never beats them hands them back (best epoch 0, the previous round's accuracy), so the
    test accuracy never goes down from round to round; without it a round keeps its best epoch even
    when that is worse than its start."""
    registry = Registry(make_plugins(load="", extra=(StartCompetes,)))
    kwargs = dict(dataset="moons", labels=4, seed=0, dataset_options={"n_train": 300, "n_test": 300},
                  registry=registry)
    options = {"epochs": 100, "lr": 0.1, "retrain": "warm", "patience": 10, "query_size": 2, "budget": 24}
    (plain,) = run("least_confidence", **kwargs, options=options)
    (kept,) = run("least_confidence", **kwargs, options={**options, "recipe": "start_competes"})
    accuracy = [e["test_accuracy"] for e in plain["curve"]]
    assert any(b < a for a, b in zip(accuracy, accuracy[1:]))  # the case is not trivial
    assert all(e["best_epoch"] >= 1 for e in plain["curve"])
    curve = kept["curve"]
    assert curve[0]["test_accuracy"] == accuracy[0]  # round 0 starts from the same fresh model
    assert all(b["test_accuracy"] >= a["test_accuracy"] for a, b in zip(curve, curve[1:]))
    kept_start = [(a, b) for a, b in zip(curve, curve[1:]) if b["best_epoch"] == 0]
    assert kept_start and all(b["test_accuracy"] == a["test_accuracy"] for a, b in kept_start)
    assert any(e["best_epoch"] >= 1 for e in curve[1:])


def test_a_run_leaves_the_strategy_options_as_given_and_records_the_training_it_used():
    strategy = Registry(make_plugins(load="")).strategies.get("supervised").obj(lr=0.05)
    given = dataclasses.asdict(strategy.options)
    job = Run(RunSpec("supervised", "moons", labels=8), strategy)
    assert dataclasses.asdict(strategy.options) == given and given["epochs"] is None  # "the dataset's default"
    moons = job.dataset.train_defaults
    assert job.training.epochs == moons["epochs"] and job.training.lr == 0.05
    recorded_when_set = {f.name for f in dataclasses.fields(TrainOptions)  # left out at their defaults
                         if f.metadata.get("recorded") == "when set"}
    assert {"samples_per_epoch", "last_batch", "validation", "validation_counted", "stop"} <= recorded_when_set
    assert job.options == {**{k: v for k, v in given.items() if k not in recorded_when_set},
                           "epochs": moons["epochs"], "batch_size": moons["batch_size"],
                           "optimizer": moons["optimizer"], "momentum": job.training.momentum,
                           "weight_decay": job.training.weight_decay}
    assert None not in (job.training.momentum, job.training.weight_decay)


def test_the_training_a_run_uses_has_every_training_option_and_every_recipe_setting():
    recipe = set(Recipe("", "").settings())
    fields = [f.name for f in dataclasses.fields(Training)]
    assert [f for f in fields if f not in recipe] == [f.name for f in dataclasses.fields(TrainOptions)]
    assert recipe <= set(fields)
