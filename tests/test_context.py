"""What a strategy sees of the run, as docs/plugins/hooks.md ("The context", "The model") says."""

from __future__ import annotations

import torch

import sslzoo
from sslzoo._contract.strategy import PseudoLabels, StepLoss
from tests.plugin_helpers import registry_with, run_here


class Observer(sslzoo.ArgmaxPseudoLabeler):
    """Pseudo-labels 5 pool ids a round and every unlabeled batch of its steps, noting what each hook sees."""

    name = "observer"
    seen: list[tuple[str, bool, bool]] = []
    id_sets: list[torch.Tensor] = []

    def note(self, hook, ctx):
        self.seen.append((hook, ctx.model.training, torch.is_grad_enabled()))

    def epoch_plan(self, ctx):
        self.note("epoch_plan", ctx)
        return sslzoo.EpochPlan(8)

    def stop(self, ctx):
        self.note("stop", ctx)
        return None if ctx.round < 3 else "done"  # two rounds of select

    def predict_keeps_the_modes(self, ctx, ids):
        before = [m.training for m in ctx.model.modules()]
        probabilities = ctx.predict(ids)
        ctx.predict_mc(ids, 2)
        assert [m.training for m in ctx.model.modules()] == before, "predict changed the model's modes"
        return probabilities

    def select(self, ctx, pool):
        self.note("select", ctx)
        ctx.pool_ids()[:] = -1  # a new tensor at every call: writing to one changes nothing in the run
        self.id_sets += [ctx.pool_ids(), ctx.labeled_ids(), ctx.pseudo_ids()]
        self.predict_keeps_the_modes(ctx, pool)
        return pool[:5]

    def label(self, ctx, ids):
        self.note("label", ctx)
        return super().label(ctx, ids)

    def weight(self, ctx, labels):
        self.note("weight", ctx)
        return super().weight(ctx, labels)

    def loss(self, ctx, step):
        self.note("loss", ctx)
        if step.unlabeled is None:
            return super().loss(ctx, step)
        confidence, targets = self.predict_keeps_the_modes(ctx, step.unlabeled).max(dim=1)
        logits = ctx.model(torch.cat([step.labeled.x, ctx.x[step.unlabeled]]))
        n = step.labeled.ids.numel()
        loss = (sslzoo.weighted_cross_entropy(logits[:n], step.labeled.targets, step.labeled.weights)
                + sslzoo.weighted_cross_entropy(logits[n:], targets, torch.ones_like(confidence)))
        return StepLoss(loss, PseudoLabels(step.unlabeled, targets, confidence))


def observed() -> Observer:
    Observer.seen, Observer.id_sets = [], []
    run_here("observer", "moons", labels=10, options={"epochs": 1}, dataset_options={"n_train": 60, "n_test": 20},
               registry=registry_with(Observer))
    return Observer


def test_id_sets_are_new_ascending_int64_tensors_of_global_ids_on_the_device():
    id_sets = observed().id_sets
    assert len(id_sets) > 3 and any(ids.numel() for ids in id_sets[2::3])  # pseudo-labeled ids appear
    for ids in id_sets:
        assert ids.dtype == torch.long and ids.dim() == 1 and ids.device.type == "cpu"
        assert torch.equal(ids, ids.sort().values) and ids.unique().numel() == ids.numel()
    pool, labeled, pseudo = id_sets[-3:]
    assert sorted(torch.cat([pool, labeled, pseudo]).tolist()) == list(range(60))  # they partition the ids


def test_the_model_trains_with_gradients_on_in_every_hook_and_predict_restores_its_modes():
    seen = observed().seen
    assert {hook for hook, _, _ in seen} == {"stop", "select", "label", "weight", "epoch_plan", "loss"}
    assert all(training and grad for _, training, grad in seen), seen
