"""Deep-ensemble members trained for a strategy (``ctx.ensemble``): K copies of the run's model,
each initialised afresh from its own seed, trained on the round's training set, in one batched
pass where the model allows (:class:`sslzoo._ops.ensemble.Stack`), else one after the other.

The members train as the run's model does, on what it trains on: the ids of the ledger's training
set (oracle and pseudo labels) with their labels and loss weights, the weighted cross-entropy of
the model's ``output_activation``, the run's optimizer, learning rate, weight decay, schedule
(:func:`sslzoo._engine.training.schedule_epoch`), epochs, batch size, ``samples_per_epoch`` and
``last_batch``, under the run's precision. Where they differ from the run's model: a member trains
with the supervised loss only (a strategy's own step loss, e.g. a composed SSL method's, is the
run's model's), without model selection (``patience``, a validation set) or teachers, and, batched,
in the default memory layout (an image model predicts in channels_last, as the run's model does).
Member k draws its initial weights from torch's global generator seeded with its seed and its
shuffles from a generator of its own seeded with it; the members' dropout masks come from the
global generator after the last member is built. All of it inside ``torch.random.fork_rng``: the
run's own random state is left as it was, so asking for an ensemble changes nothing else of a run.

Seeds: member k of round r of a run with seed s is initialised from
``SeedSequence([ENSEMBLE_STREAM, s, r, k])``: reproducible, independent across members and rounds.

Reference: Beluch, W. H., Genewein, T., Nürnberger, A. & Köhler, J. M. (2018). The Power of
Ensembles for Active Learning in Image Classification. CVPR 2018, 9368–9377.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from sslzoo._contract.ledger import Ledger
from sslzoo._contract.strategy import weighted_cross_entropy
from sslzoo._engine.training import Training, make_optimizer, schedule_epoch
from sslzoo._ops import inference
from sslzoo._ops.batches import pass_bounds, pass_length, pass_order
from sslzoo._ops.ensemble import Ensemble, Stack, batchable

ENSEMBLE_STREAM = 0xE115E_AB1E
"""Mixed into every member's seed, so that no member starts from the run's own seed."""


def member_seeds(seed: int, rnd: int, members: int) -> list[int]:
    """The seeds of the ``members`` members of round ``rnd`` of a run with ``seed``."""
    return [int(np.random.SeedSequence([ENSEMBLE_STREAM, seed, rnd, k]).generate_state(1, np.uint64)[0] >> 1)
            for k in range(members)]


def train_ensemble(build: Callable[[], nn.Module], seeds: list[int], x: torch.Tensor, ledger: Ledger,
                   training: Training, activation: str) -> Ensemble:
    """K = ``len(seeds)`` members, each ``build()`` with torch's generator seeded with its seed, trained
    on ``ledger``'s training set (inputs ``x``) with ``training``."""
    device = x.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the run's generators kept
        models = []
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(build())
        ids = ledger.train()
        generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
        batched = batchable(models, x)
        if batched:
            _train_stacked(models, generators, x, ids, ledger, training, activation)
        else:
            for model, generator in zip(models, generators):
                _train_one(model, generator, x, ids, ledger, training, activation)
    for model in models:
        model.eval()
        if x.dim() == 4:  # images: channels_last convolutions for the predictions, as the run's model has them
            model.to(memory_format=torch.channels_last)
    return Ensemble(models, x, batched, training.precision)


def _orders(n: int, training: Training, generators: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """One epoch's labeled pass of each member (K, length): positions in the training set."""
    return torch.stack([pass_order(n, training.samples_per_epoch, g, device) for g in generators])


def _train_stacked(models: list[nn.Module], generators: list[torch.Generator], x: torch.Tensor, ids: torch.Tensor,
                   ledger: Ledger, training: Training, activation: str) -> None:
    """Train the members together: one optimizer step of all K per batch (:class:`Stack`)."""
    stack = Stack(models)
    optimizer = make_optimizer(stack.holder, training, int(ids.numel()))
    n = ids.numel()
    bounds = pass_bounds(pass_length(n, training.samples_per_epoch), training.batch_size, training.last_batch)
    stack.train()
    for epoch in range(training.epochs):
        schedule_epoch(optimizer, training, epoch)
        orders = ids[_orders(n, training, generators, x.device)]  # (K, length) global ids
        for start, stop in bounds:
            batch = orders[:, start:stop]
            with inference.autocast(x.device, training.precision):
                logits = stack.forward(x[batch.flatten()].unflatten(0, batch.shape))  # (K, B, C): rows read as ids
            # every member's batch has B ids: K times the mean over all K·B is the sum of the K means
            loss = weighted_cross_entropy(logits.flatten(0, 1), ledger.target[batch].flatten(),
                                          ledger.weight[batch].flatten(), activation) * stack.k
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    stack.unstack(models)


def _train_one(model: nn.Module, generator: torch.Generator, x: torch.Tensor, ids: torch.Tensor, ledger: Ledger,
               training: Training, activation: str) -> None:
    """Train one member alone (a model :class:`Stack` cannot batch), with the same batches as batched."""
    optimizer = make_optimizer(model, training, int(ids.numel()))
    n = ids.numel()
    bounds = pass_bounds(pass_length(n, training.samples_per_epoch), training.batch_size, training.last_batch)
    model.train()
    for epoch in range(training.epochs):
        schedule_epoch(optimizer, training, epoch)
        order = ids[pass_order(n, training.samples_per_epoch, generator, x.device)]
        for start, stop in bounds:
            batch = order[start:stop]
            with inference.autocast(x.device, training.precision):
                logits = model(x[batch])
            loss = weighted_cross_entropy(logits, ledger.target[batch], ledger.weight[batch], activation)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
