"""The engine's teachers (``ctx.teacher``): models whose weights follow the trained one by an
exponential moving average, for any strategy, and ``evaluated_model``, which reports one of them."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import sslzoo
from sslzoo._ops.teacher import Teacher
from sslzoo.errors import PluginError
from sslzoo.testing import check_determinism, check_record, check_strategy, tiny_run
from tests.plugin_helpers import registry_with, run_here

MOONS = {"n_train": 60, "n_test": 40}


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_a_teacher_averages_the_students_weights_exponentially():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    teacher = Teacher(student, decay=0.9, warmup=False, x=torch.zeros(1, 3))
    expected = _weights(student)
    for _ in range(3):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p))
        student(torch.randn(5, 3))  # batch norm's running statistics and its step counter move too
        teacher.update()
        expected = [0.9 * e + 0.1 * s for e, s in zip(expected, _weights(student))]
    for got, want in zip(teacher.model.parameters(), expected):
        torch.testing.assert_close(got, want)
    bn, own = student[1], teacher.model[1]
    assert int(own.num_batches_tracked) == int(bn.num_batches_tracked) == 3  # copied, not averaged
    assert not any(p.requires_grad for p in teacher.model.parameters())


def test_with_warmup_a_teacher_is_the_plain_mean_of_the_weights_until_the_decay_takes_over():
    student = nn.Linear(2, 1)
    teacher = Teacher(student, decay=0.6, warmup=True, x=torch.zeros(1, 2))
    history = [_weights(student)]
    decays = []
    for _ in range(4):
        with torch.no_grad():
            for p in student.parameters():
                p.add_(1.0)
        history.append(_weights(student))
        decays.append(teacher.current_decay())
        teacher.update()
        if len(history) == 2:  # after 1 update (decay 1/2): the mean of the first two
            mean = [torch.stack(ws).mean(0) for ws in zip(*history)]
            for got, want in zip(teacher.model.parameters(), mean):
                torch.testing.assert_close(got, want)
    assert decays == pytest.approx([0.5, 0.6, 0.6, 0.6])  # min(decay, 1 - 1/(t + 1))


class Follower(sslzoo.Strategy):
    """Supervised training with a teacher asked for in every loss call; ``evaluate`` reports it."""

    name = "follower"
    family = "baseline"
    decay, warmup, evaluate = 0.0, True, False
    teachers: list[Teacher] = []
    steps = 0

    def loss(self, ctx, step):
        teacher = ctx.teacher(self.decay, warmup=self.warmup)
        if teacher not in self.teachers:
            self.teachers.append(teacher)
            Follower.start, Follower.student = _weights(ctx.model), ctx.model
        Follower.steps += 1
        return super().loss(ctx, step)

    def evaluated_model(self, ctx):
        return ctx.teacher(name="teacher").model if self.evaluate else ctx.model


def _follow(decay: float, warmup: bool = True, evaluate: bool = False, **options):
    Follower.decay, Follower.warmup, Follower.evaluate = decay, warmup, evaluate
    Follower.teachers, Follower.steps = [], 0
    registry = registry_with(Follower)
    record, = run_here("follower", "moons", labels=20, options={"epochs": 3, "batch_size": 4, **options},
                         dataset_options=MOONS, registry=registry, device="cpu")
    return record


def test_the_engine_updates_every_teacher_after_every_optimizer_step():
    trained = _follow(decay=0.0)  # decay 0: a copy of the student after each step
    teacher, = Follower.teachers
    assert teacher.updates == Follower.steps == 15  # 3 epochs of 5 batches
    for got, want in zip(teacher.model.parameters(), Follower.student.parameters()):
        assert torch.equal(got, want)
    assert _follow(decay=0.0, evaluate=True)["test_accuracy"] == trained["test_accuracy"]


def test_a_frozen_teacher_keeps_the_weights_it_was_created_with_and_can_be_what_the_run_reports():
    trained = _follow(decay=1.0, warmup=False)
    frozen = _follow(decay=1.0, warmup=False, evaluate=True)
    teacher, = Follower.teachers
    assert teacher.updates == Follower.steps
    for got, want in zip(teacher.model.parameters(), Follower.start):
        assert torch.equal(got, want)
    assert frozen["test_accuracy"] != trained["test_accuracy"]  # the untrained start, not the trained model


def test_a_model_built_afresh_gets_new_teachers():
    class Rounds(Follower):
        name = "follower_rounds"
        family = "ssl"

        def stop(self, ctx):
            return None if ctx.round < 2 else "done"

        def select(self, ctx, pool):
            return pool[:3]

        def label(self, ctx, ids):
            return sslzoo.Labels.pseudo(ids, ids.new_zeros(ids.numel()), torch.ones(ids.numel()))

    Follower.teachers = []
    for retrain, teachers in (("scratch", 2), ("warm", 1)):
        Follower.teachers, Follower.decay = [], 0.5
        run_here("follower_rounds", "moons", labels=20, options={"epochs": 1, "retrain": retrain},
                   dataset_options=MOONS, registry=registry_with(Rounds), device="cpu")
        assert len(Follower.teachers) == teachers, retrain


def test_a_teacher_asked_for_before_the_first_model_or_without_a_decay_is_a_plugin_error():
    class Early(sslzoo.Strategy):
        name = "early_teacher"
        family = "baseline"

        def check(self, ctx):
            ctx.teacher(0.99)

    with pytest.raises(PluginError, match="before the first model was built"):
        run_here("early_teacher", "moons", labels=20, options={"epochs": 1}, dataset_options=MOONS,
                   registry=registry_with(Early), device="cpu")

    class Nameless(sslzoo.Strategy):
        name = "nameless_teacher"
        family = "baseline"
        decay: float | None = None

        def loss(self, ctx, step):
            ctx.teacher(self.decay)
            return super().loss(ctx, step)

    with pytest.raises(PluginError, match="must give its decay"):
        run_here("nameless_teacher", "moons", labels=20, options={"epochs": 1}, dataset_options=MOONS,
                   registry=registry_with(Nameless), device="cpu")
    Nameless.decay = 1.5
    with pytest.raises(PluginError, match=r"decay=1.5\): the decay must be between 0 and 1"):
        run_here("nameless_teacher", "moons", labels=20, options={"epochs": 1}, dataset_options=MOONS,
                   registry=registry_with(Nameless), device="cpu")


def test_a_strategy_with_a_teacher_honours_the_contract():
    Follower.decay, Follower.warmup, Follower.evaluate = 0.9, True, True
    check_strategy("follower", registry_with(Follower))


def test_the_hook_references_mean_teacher_loss_trains_with_a_teacher():
    from tests.test_docs import HOOKS_MD, fenced_blocks, part

    block, = [b for b in fenced_blocks(part(HOOKS_MD, "Teachers")) if b.lang == "python"]
    namespace: dict = {}
    exec(compile(block.body, "hooks.md", "exec"), namespace)
    assert list(inspect.signature(namespace["loss"]).parameters) == ["self", "ctx", "step"], (
        "the Teachers example of docs/plugins/hooks.md is not a loss(self, ctx, step)")

    class Documented(sslzoo.ArgmaxPseudoLabeler):
        name = "documented_teacher"
        level = "step"
        loss = namespace["loss"]

        def epoch_plan(self, ctx):
            return sslzoo.EpochPlan(16)

    registry = registry_with(Documented)  # defined here: no learner process could import it, so no leak check
    run = tiny_run("documented_teacher", registry=registry)
    check_record(run)
    check_determinism(run, registry)


def test_predictions_through_a_view_see_the_transformed_inputs():
    class Viewer(Follower):
        name = "viewer"
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []

        def loss(self, ctx, step):
            blank = lambda x: torch.zeros_like(x)  # noqa: E731
            teacher = ctx.teacher(0.5)
            ids = step.labeled.ids
            Viewer.seen.append((ctx.predict(ids, view=blank), teacher.predict(ids, view=blank)))
            return super().loss(ctx, step)

    run_here("viewer", "moons", labels=20, options={"epochs": 1, "batch_size": 10}, dataset_options=MOONS,
               registry=registry_with(Viewer), device="cpu")
    for student, teacher in Viewer.seen:  # every id looks the same through the view
        assert student.shape == teacher.shape == (10, 2)
        assert torch.allclose(student, student[:1]) and torch.allclose(teacher, teacher[:1])
