"""What a strategy sees of the run, as docs/plugins/hooks.md ("The context", "The model") says."""

from __future__ import annotations

import torch

import sslzoo
from tests.plugin_helpers import registry_with


class Observer(sslzoo.ArgmaxPseudoLabeler):
    """Pseudo-labels 5 pool ids a round and every unlabeled batch, noting what each hook sees."""

    name = "observer"
    seen: list[tuple[str, str, bool, bool]] = []
    id_sets: list[torch.Tensor] = []

    def note(self, hook, ctx):
        self.seen.append((hook, ctx.phase, ctx.model.training, torch.is_grad_enabled()))

    def unlabeled_batch_size(self):
        return 8

    def stop(self, ctx):
        self.note("stop", ctx)
        return None if ctx.round < 2 else "done"

    def select(self, ctx, candidates):
        self.note("select", ctx)
        ctx.pool_ids()[:] = -1  # a new tensor at every call: writing to one changes nothing in the run
        self.id_sets += [ctx.pool_ids(), ctx.labeled_ids(), ctx.pseudo_ids()]
        before = [m.training for m in ctx.model.modules()]
        ctx.predict(candidates)
        ctx.predict_mc(candidates, 2)
        assert [m.training for m in ctx.model.modules()] == before, "predict changed the model's modes"
        return candidates[:5] if ctx.phase == "round" else candidates

    def label(self, ctx, ids):
        self.note("label", ctx)
        return super().label(ctx, ids)

    def weight(self, ctx, labels):
        self.note("weight", ctx)
        return super().weight(ctx, labels)

    def loss(self, ctx, labeled, unlabeled):
        self.note("loss", ctx)
        return super().loss(ctx, labeled, unlabeled)


def observed() -> Observer:
    Observer.seen, Observer.id_sets = [], []
    sslzoo.run("observer", "moons", labels=10, options={"epochs": 1}, dataset_options={"n_train": 60, "n_test": 20},
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


def test_the_model_trains_with_gradients_on_in_every_hook_of_both_phases_and_predict_restores_its_modes():
    seen = observed().seen
    assert {(hook, phase) for hook, phase, _, _ in seen} >= {
        ("stop", "round"), ("select", "round"), ("label", "round"), ("weight", "round"),
        ("select", "step"), ("label", "step"), ("weight", "step"), ("loss", "step")}
    assert all(training and grad for _, _, training, grad in seen), seen
