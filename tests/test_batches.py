"""The training options that cut an epoch into batches: ``samples_per_epoch`` (BatchBALD's fixed-length
sampler) and ``last_batch`` (keep, drop or even batches)."""

from __future__ import annotations

import collections

import pytest
import torch

from sslzoo import create_strategy, run
from sslzoo._contract.strategy import EpochPlan
from sslzoo._engine.run import Run, RunSpec, epoch_steps
from sslzoo._ops.batches import pass_bounds, pass_length, pass_order
from sslzoo.errors import OptionError

SMALL_MOONS = {"n_train": 300, "n_test": 100}


def sizes(bounds: list[tuple[int, int]]) -> list[int]:
    return [stop - start for start, stop in bounds]


def test_the_last_partial_batch_is_kept_dropped_or_evened_out():
    assert sizes(pass_bounds(130, 128)) == [128, 2]
    assert sizes(pass_bounds(130, 128, "drop")) == [128]
    assert sizes(pass_bounds(130, 128, "even")) == [65, 65]
    assert sizes(pass_bounds(260, 128, "even")) == [87, 87, 86]
    assert sizes(pass_bounds(256, 128, "even")) == sizes(pass_bounds(256, 128, "drop")) == [128, 128]
    assert sizes(pass_bounds(20, 128, "drop")) == [20]  # shorter than a batch: still one batch
    assert pass_bounds(0, 128, "even") == []
    assert epoch_steps(130, 128, 0, EpochPlan(), "drop") == [(0, False)]
    assert epoch_steps(130, 128, 500, EpochPlan(64), "even") == [(0, True), (1, True)]


def test_a_fixed_length_pass_draws_each_labeled_sample_equally_often():
    """``samples_per_epoch`` 5056 over 20 labels: 5056 draws, each label 252 or 253 times (BatchBALD's
    ``randperm(5056) % 20``); at most the labeled set's size it is one shuffled pass."""
    generator = torch.Generator().manual_seed(0)
    order = pass_order(20, 5056, generator, torch.device("cpu"))
    assert order.numel() == pass_length(20, 5056) == 5056
    assert sorted(collections.Counter(order.tolist()).values()) == [252] * 4 + [253] * 16
    assert pass_length(100, 50) == 100
    assert sorted(pass_order(100, 50, generator, torch.device("cpu")).tolist()) == list(range(100))


def _batch_sizes(labels: int, **options) -> list[int]:
    """The labeled batch sizes of a one-epoch supervised run on two-moons."""
    spec = RunSpec("supervised", "moons", labels=labels, device="cpu", dataset_options=SMALL_MOONS)
    job = Run(spec, create_strategy("supervised", epochs=1, **options))
    seen: list[int] = []
    step = job._step

    def counted(trainer, one, tally):
        seen.append(one.labeled.ids.numel())
        return step(trainer, one, tally)

    job._step = counted  # type: ignore[method-assign]
    job.execute()
    return seen


def test_an_epoch_trains_on_the_batches_the_options_ask_for():
    assert _batch_sizes(130, batch_size=128) == [128, 2]
    assert _batch_sizes(130, batch_size=128, last_batch="drop") == [128]
    assert _batch_sizes(130, batch_size=128, last_batch="even") == [65, 65]
    assert _batch_sizes(20, batch_size=64, samples_per_epoch=5056) == [64] * 79


def test_the_options_are_recorded_when_set_and_a_bad_value_names_what_is_allowed():
    options = {"epochs": 1, "samples_per_epoch": 64, "last_batch": "even"}
    (record,) = run("supervised", "moons", labels=10, dataset_options=SMALL_MOONS, options=options)
    assert record["options"]["samples_per_epoch"] == 64 and record["options"]["last_batch"] == "even"
    (plain,) = run("supervised", "moons", labels=10, dataset_options=SMALL_MOONS, options={"epochs": 1})
    assert not {"samples_per_epoch", "last_batch"} & set(plain["options"])
    with pytest.raises(OptionError, match=r"^option last_batch='ragged' of strategy 'supervised' is not allowed: "
                                          r"expected one of 'keep', 'drop', 'even'$"):
        create_strategy("supervised", last_batch="ragged")
