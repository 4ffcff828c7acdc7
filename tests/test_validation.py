"""Model selection on a validation set drawn from the pool: drawn by the judge with the run's seed, its
labels handed to the learner like the starting labels, never trained on or queried, counted among the
oracle labels only with ``validation_counted``, and early stopping computed in the learner from them."""

from __future__ import annotations

import time

import pytest
import torch

from sslzoo import create_strategy, run
from sslzoo._contract.labels import HELD_OUT
from sslzoo._contract.record import selected_on_test
from sslzoo._engine.run import Run, RunSpec
from sslzoo._planning.bench import summarize
from sslzoo._planning.executor import SerialExecutor
from sslzoo.errors import OptionError

SMALL_MOONS = {"n_train": 300, "n_test": 100}
AL = {"epochs": 3, "query_size": 5, "budget": 20, "lr": 0.05}


def _without_wall_time(record):
    return {k: v for k, v in record.items() if k not in ("wall_seconds", "judge", "machine")}


def _job(strategy: str, **options) -> Run:
    spec = RunSpec(strategy, "moons", labels=10, device="cpu", dataset_options=SMALL_MOONS, options=options)
    return Run(spec, create_strategy(strategy, **options))


def test_the_validation_set_is_never_trained_on_nor_queried_and_is_not_counted_by_default():
    job = _job("random", validation=50, patience=2, **AL)
    trained: list[torch.Tensor] = []
    step = job._step

    def seen(trainer, one, tally):
        trained.append(one.labeled.ids)
        return step(trainer, one, tally)

    job._step = seen
    record = job.execute()
    ids = job.data.validation_ids
    assert ids is not None and ids.numel() == 50
    assert (job.data.ledger.source[ids] == HELD_OUT).all()
    assert not torch.isin(torch.cat(trained), ids).any()
    assert torch.equal(job.data.validation_targets, torch.as_tensor(job.dataset.load(0).y_train)[ids])
    assert record["validation"] == {"size": 50, "counted": False}
    assert record["oracle_labels"] == 20 and [e["labels"] for e in record["curve"]] == [10, 15, 20]
    assert all(1 <= e["best_epoch"] <= 3 for e in record["curve"])


def test_a_counted_validation_set_counts_among_the_oracle_labels():
    (record,) = run("supervised", "moons", labels=10, dataset_options=SMALL_MOONS,
                    options={"epochs": 2, "validation": 50, "validation_counted": True})
    assert record["validation"] == {"size": 50, "counted": True}
    assert record["labels"] == 10 and record["oracle_labels"] == 60
    assert record["options"]["validation"] == 50 and record["options"]["validation_counted"] is True


def test_early_stopping_on_the_validation_set_never_asks_the_judge_for_a_test_accuracy():
    job = _job("supervised", epochs=40, lr=0.1, validation=50, patience=3)
    job.setup()

    def refused(predicted):
        raise AssertionError("the test set was read for model selection")

    job.judge.accuracy = refused
    job.learn(time.perf_counter())
    (entry,) = job.judge.record["curve"]
    assert entry["best_epoch"] <= 40 and selected_on_test(job.judge.record) == 0


def test_the_learner_process_gets_the_same_validation_set_as_the_run_in_process():
    kwargs = dict(labels=10, dataset_options=SMALL_MOONS, options={**AL, "validation": 40, "patience": 2})
    (apart,) = run("margin", "moons", **kwargs)
    (together,) = run("margin", "moons", **kwargs, executor=SerialExecutor(in_process=True))
    assert _without_wall_time(apart) == _without_wall_time(together)
    (other_seed,) = run("margin", "moons", seed=1, **kwargs, executor=SerialExecutor(in_process=True))
    assert other_seed["curve"] != together["curve"]


def test_only_test_set_selection_is_flagged():
    (tested,) = run("supervised", "moons", labels=10, dataset_options=SMALL_MOONS,
                    options={"epochs": 3, "patience": 1})
    (validated,) = run("supervised", "moons", labels=10, dataset_options=SMALL_MOONS,
                       options={"epochs": 3, "patience": 1, "validation": 30})
    assert "validation" not in tested and selected_on_test(tested) == 1
    assert selected_on_test(validated) == 0
    assert [row["patience"] for row in summarize([tested])] == [1]
    assert [row["patience"] for row in summarize([validated])] == [0]


def test_a_validation_set_that_cannot_be_drawn_is_one_line_naming_the_limit():
    with pytest.raises(OptionError, match=r"^option validation=295 is not allowed: the pool of dataset 'moons' has "
                                          r"290 ids after the starting labels; ask for at most 290$"):
        _job("supervised", epochs=1, validation=295).execute()
    with pytest.raises(OptionError, match=r"validation_counted .* needs validation of at least 1"):
        _job("supervised", epochs=1, validation_counted=True)
