"""Self-training: what a round accepts, how it stops, and the batched augmentation."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sslzoo import hookimpl
from sslzoo._contract.dataset import Arrays
from sslzoo._contract.labels import ORACLE, PSEUDO
from sslzoo._contract.plugins import make_plugins
from sslzoo._contract.registry import Registry
from sslzoo._contract.strategy import Batch, Step
from sslzoo._default_plugins.datasets import Mnist
from sslzoo._default_plugins.self_training import SelfTraining
from sslzoo._engine.run import Run, RunSpec
from sslzoo._ops.augment import affine_matrices, random_affine

MOONS_LABELS = 20


@pytest.fixture(autouse=True)
def _no_third_party_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSLZOO_LOAD_PLUGINS", "")


class SpySelfTraining(SelfTraining):
    """Self-training that also predicts the pool itself, to check each round's acceptances."""

    def __init__(self, **options):
        super().__init__(**options)
        self.rounds: list[dict[str, torch.Tensor]] = []

    def select(self, ctx, candidates):
        probs = ctx.predict(candidates)
        chosen = super().select(ctx, candidates)
        self.rounds.append({"round": ctx.round, "pool": candidates, "probs": probs, "chosen": chosen})
        return chosen


def _moons_run(strategy: SelfTraining, seed: int = 0, labels: int = MOONS_LABELS) -> tuple[Run, dict]:
    job = Run(RunSpec("self_training", "moons", labels=labels, seed=seed, device="cpu"), strategy)
    return job, job.execute()


def test_a_round_accepts_exactly_the_pool_samples_at_or_above_the_threshold():
    strategy = SpySelfTraining(threshold=0.8, max_rounds=3, epochs=30)
    job, record = _moons_run(strategy)
    assert len(strategy.rounds) >= 2
    # the first pool held samples below the threshold too: the criterion really filtered
    assert (strategy.rounds[0]["probs"].max(dim=1).values < 0.8).any()
    accepted_total = 0
    for rnd in strategy.rounds:
        confidence, argmax = rnd["probs"].max(dim=1)
        expected = rnd["pool"][confidence >= 0.8]
        assert set(rnd["chosen"].tolist()) == set(expected.tolist()), f"round {rnd['round']}"
        # the ledger froze that round's argmax and confidence
        taken = torch.isin(rnd["pool"], rnd["chosen"])
        ids = rnd["pool"][taken]
        assert torch.equal(job.data.ledger.target[ids], argmax[taken])
        assert torch.allclose(job.data.ledger.confidence[ids], confidence[taken])
        assert (job.data.ledger.round[ids] == rnd["round"]).all()
        accepted_total += ids.numel()
    pseudo = job.data.ledger.pseudo()
    assert pseudo.numel() == accepted_total > 0
    assert (job.data.ledger.source[pseudo] == PSEUDO).all()
    assert bool((job.data.ledger.confidence[pseudo] >= 0.8).all())
    assert (job.data.ledger.weight[pseudo] == 1).all()
    # the first round's confident argmax labels are nearly all right, and the rest mostly:
    # labels that are not the argmax (or not frozen from the round that accepted them) fail this
    first = strategy.rounds[0]["chosen"]
    assert job.judge.correct(first, job.data.ledger.target[first]).float().mean() >= 0.95
    assert record["curve"][-1]["pseudo_accuracy"] >= 0.8
    assert record["oracle_labels"] == MOONS_LABELS  # self-training never asks the oracle


@pytest.mark.parametrize(("options", "termination", "rounds"), [
    ({"criterion": "k_best", "k_best": 5, "max_rounds": 2}, "max_rounds", 3),
    ({"threshold": 1.0, "epochs": 1}, "nothing_selected", 1),
    ({"criterion": "sample_rate", "sample_rate": 1.0}, "pool_empty", 2),
])
def test_each_termination_is_reachable_and_recorded(options, termination, rounds):
    job, record = _moons_run(SelfTraining(**{"epochs": 20, **options}))
    assert record["termination"] == termination
    assert len(record["curve"]) == rounds
    if termination == "max_rounds":
        assert job.data.ledger.pseudo().numel() == 2 * 5
        assert sorted(set(job.data.ledger.round[job.data.ledger.pseudo()].tolist())) == [1, 2]
    if termination == "nothing_selected":
        assert job.data.ledger.pseudo().numel() == 0
    if termination == "pool_empty":
        assert job.data.ledger.pool().numel() == 0
        assert record["curve"][-1]["pseudo_labels"] == 1000 - MOONS_LABELS
        assert record["curve"][-1]["pseudo_ids"] == 1000 - MOONS_LABELS  # given in rounds: once per id


def test_sample_rate_takes_the_most_confident_fraction_and_confidence_weighting():
    strategy = SpySelfTraining(criterion="sample_rate", sample_rate=0.25, max_rounds=1, epochs=20,
                               weighting="confidence")
    job, record = _moons_run(strategy)
    (rnd,) = strategy.rounds
    n = rnd["pool"].numel()
    assert rnd["chosen"].numel() == math.ceil(0.25 * n)
    confidence = rnd["probs"].max(dim=1).values
    taken = torch.isin(rnd["pool"], rnd["chosen"])
    assert confidence[taken].min() >= confidence[~taken].max()
    pseudo = job.data.ledger.pseudo()
    assert torch.equal(job.data.ledger.weight[pseudo], job.data.ledger.confidence[pseudo])
    assert record["termination"] == "max_rounds"


def test_per_class_sample_rate_takes_that_fraction_of_each_predicted_class():
    strategy = SpySelfTraining(criterion="sample_rate", sample_rate=0.1, per_class=True, max_rounds=1, epochs=20)
    _moons_run(strategy)
    (rnd,) = strategy.rounds
    confidence, predicted = rnd["probs"].max(dim=1)
    taken = torch.isin(rnd["pool"], rnd["chosen"])
    for c in (0, 1):
        mine = predicted == c
        assert int((taken & mine).sum()) == math.ceil(0.1 * int(mine.sum()))
        assert confidence[taken & mine].min() >= confidence[~taken & mine].max()


def test_augment_is_the_identity_on_non_image_inputs():
    records = [_moons_run(SelfTraining(max_rounds=1, epochs=10, augment=augment))[1] for augment in (False, True)]
    assert records[0]["curve"] == records[1]["curve"]


# --- augmentation --------------------------------------------------------------------------------


def _images(n: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(123)
    return torch.rand(n, 1, 28, 28, generator=g)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_affine_keeps_shapes_is_seeded_and_changes_the_images():
    x = _images()
    a, b, c = random_affine(x, _gen(0)), random_affine(x, _gen(0)), random_affine(x, _gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    per_image = (a - x).abs().flatten(1).amax(dim=1)
    assert (per_image > 1e-3).all()  # every image moved, each by its own transform
    assert not torch.allclose(a[0] - x[0], a[1] - x[1])


def test_random_affine_with_no_range_is_the_identity():
    x = _images()
    assert torch.allclose(random_affine(x, _gen(0), rotation=0, zoom=0, shift=0), x, atol=1e-5)


def test_random_affine_parameters_stay_in_range():
    theta = affine_matrices(4096, _gen(0))
    linear, shift = theta[:, :, :2], theta[:, :, 2]
    angle = torch.rad2deg(torch.atan2(linear[:, 1, 0], linear[:, 0, 0]))
    zoom = 1 / torch.linalg.det(linear).sqrt()
    assert angle.abs().max() <= 10 + 1e-4 and angle.abs().max() > 9
    assert zoom.min() >= 0.9 - 1e-5 and zoom.max() <= 1.1 + 1e-5
    assert shift.abs().max() <= 0.2 + 1e-6 and shift.abs().max() > 0.18  # 10% of a side spanning 2


def test_random_affine_passes_through_non_images_and_empty_batches():
    g = _gen(0)
    flat = torch.randn(5, 2)
    assert random_affine(flat, g) is flat
    empty = torch.zeros(0, 1, 28, 28)
    assert random_affine(empty, g) is empty


class InputsSeen(nn.Module):
    """A linear model on 28x28 images that notes the inputs of each forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.inputs = nn.Linear(28 * 28, 2), []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.linear(x.flatten(1))


@pytest.mark.parametrize(("augment", "moved"), [
    (False, [False] * 5),  # augment is off by default
    (True, [False, True, False, True, False]),
])
def test_the_loss_augments_only_the_pseudo_labeled_images(augment, moved):
    ids, x, targets = torch.tensor([0, 5, 1, 6, 2]), _images(5), torch.tensor([0, 1, 0, 1, 1])
    source = torch.tensor([ORACLE, PSEUDO, ORACLE, PSEUDO, ORACLE], dtype=torch.int8)
    weights = torch.tensor([1.0, 0.5, 1.0, 0.5, 1.0])
    model = InputsSeen()
    ctx = SimpleNamespace(model=model, generator=_gen(0), activation="softmax")
    strategy = SelfTraining(augment=augment) if augment else SelfTraining()
    loss = strategy.loss(ctx, Step(Batch(ids, x, targets, weights, source)))
    (seen,) = model.inputs  # one forward pass, on the batch as it is trained on
    assert ((seen - x).abs().flatten(1).amax(dim=1) > 1e-3).tolist() == moved
    expected = (nn.functional.cross_entropy(model.linear(seen.flatten(1)), targets, reduction="none") * weights).mean()
    torch.testing.assert_close(loss, expected)


class MnistSubset(Mnist):
    """The first 2000 training and 500 test digits: MNIST images at the cost of a toy dataset."""

    name = "mnist_subset"

    def load(self, seed):
        full = super().load(seed)
        return Arrays(full.x_train[:2000], full.y_train[:2000], full.x_test[:500], full.y_test[:500])


class SubsetPlugin:
    @hookimpl
    def register_datasets(self, register):
        register(MnistSubset)


class LossSpy(SelfTraining):
    """Self-training that checks, around its loss hook, the images the model was trained on."""

    def __init__(self, **options):
        super().__init__(**options)
        self.moved = {"pseudo": [], "oracle": []}

    def loss(self, ctx, step):
        seen = []
        hook = ctx.model.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach()))
        try:
            out = super().loss(ctx, step)
        finally:
            hook.remove()
        labeled = step.labeled
        moved = (seen[-1] - ctx.x[labeled.ids]).abs().flatten(1).amax(dim=1) > 1e-4
        pseudo = labeled.source == PSEUDO
        assert torch.equal(pseudo, ctx.ledger.source[labeled.ids] == PSEUDO)
        self.moved["pseudo"].append(moved[pseudo])
        self.moved["oracle"].append(moved[~pseudo])
        return out


@pytest.mark.slow
@pytest.mark.parametrize("augment", [False, True])
def test_the_engine_trains_on_augmented_pseudo_labeled_mnist_images(augment):
    registry = Registry(make_plugins(load="", extra=(SubsetPlugin(),)))
    strategy = LossSpy(augment=augment, criterion="k_best", k_best=300, max_rounds=1, epochs=2)
    job = Run(RunSpec("self_training", "mnist_subset", labels=100, seed=0, device="cpu"), strategy, registry)
    record = job.execute()
    assert record["termination"] == "max_rounds" and job.data.ledger.pseudo().numel() == 300
    pseudo, oracle = torch.cat(strategy.moved["pseudo"]), torch.cat(strategy.moved["oracle"])
    assert pseudo.numel() == 2 * 300 and oracle.numel() == 2 * 100 + 2 * 100  # round 0 and round 1
    assert not oracle.any()
    assert bool(pseudo.all()) if augment else not pseudo.any()


def test_random_draws_new_pool_samples_each_round_whatever_their_confidence():
    strategy = SpySelfTraining(criterion="random", sample_rate=0.1, max_rounds=4, epochs=20)
    job, record = _moons_run(strategy)
    first_pool = strategy.rounds[0]["pool"]
    size = math.ceil(0.1 * first_pool.numel())
    chosen = [rnd["chosen"] for rnd in strategy.rounds]
    assert [c.numel() for c in chosen] == [size] * 4  # no band: every drawn sample is accepted
    assert torch.cat(chosen).unique().numel() == 4 * size
    # not the most confident: the first round takes samples less sure than some it leaves
    confidence = strategy.rounds[0]["probs"].max(dim=1).values
    taken = torch.isin(first_pool, chosen[0])
    assert confidence[taken].min() < confidence[~taken].max()
    assert record["termination"] == "max_rounds" and job.data.ledger.pseudo().numel() == 4 * size


def test_random_with_a_reject_band_never_draws_a_rejected_sample_again():
    band = (0.7, 0.95)
    strategy = SpySelfTraining(criterion="random", sample_rate=0.2, reject_band=band, max_rounds=4, epochs=20)
    job, _ = _moons_run(strategy)
    size = math.ceil(0.2 * strategy.rounds[0]["pool"].numel())
    drawn_before: set[int] = set()
    rejected = 0
    for rnd in strategy.rounds:
        confidence = rnd["probs"].max(dim=1).values
        taken = torch.isin(rnd["pool"], rnd["chosen"])
        assert bool(((confidence[taken] < band[0]) | (confidence[taken] > band[1])).all())
        # what a round took and what it drew but left are new draws; the left ones stay in the pool
        ids = set(rnd["chosen"].tolist())
        assert not ids & drawn_before
        drawn_before |= ids
        rejected += size - len(ids)
    assert rejected > 0  # the band really dropped samples
    assert job.data.ledger.pool().numel() == strategy.rounds[0]["pool"].numel() - len(drawn_before)


def test_a_reject_band_also_filters_the_confident_criteria():
    strategy = SpySelfTraining(criterion="sample_rate", sample_rate=0.5, reject_band=(0.0, 0.99), max_rounds=1,
                               epochs=20)
    _moons_run(strategy)
    (rnd,) = strategy.rounds
    confidence = rnd["probs"].max(dim=1).values
    assert rnd["chosen"].numel() < math.ceil(0.5 * rnd["pool"].numel())
    assert bool((confidence[torch.isin(rnd["pool"], rnd["chosen"])] > 0.99).all())


@pytest.mark.parametrize("band", ["0.6,0.4", "0.4", "0.1,0.2,0.3", "-0.1,0.5", "0.5,1.5"])
def test_a_reject_band_that_is_not_low_high_in_0_1_is_a_one_line_error(band):
    from sslzoo.errors import OptionError

    with pytest.raises(OptionError, match=r"option reject_band=.* of strategy 'self_training' is not allowed: "
                                          r"it must be LOW,HIGH with 0 <= LOW <= HIGH <= 1"):
        SelfTraining(reject_band=band)
