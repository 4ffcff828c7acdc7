"""How a run trains: the training options with the dataset's defaults filled in and the recipe's
semantics added, the optimizer they build, its per-epoch schedule, and early stopping on the test set.

A strategy's :class:`~sslzoo._contract.strategy.TrainOptions` may leave ``epochs``, ``batch_size``, ``lr``,
``optimizer``, ``momentum`` and ``weight_decay`` at ``None`` ("the dataset's default"); a run
trains with :class:`Training`, the same options with every such ``None`` filled in and the settings
of the :class:`~sslzoo._contract.recipe.Recipe` its ``recipe`` option names, and leaves the strategy's own
options as they were given.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from sslzoo._contract.recipe import Recipe
from sslzoo._contract.strategy import TrainOptions
from sslzoo._ops import inference
from sslzoo._ops.adam import AdamEpsilonHat, AdamWEpsilonHat
from sslzoo._ops.inference import Precision
from sslzoo.errors import OptionError

#: What a dataset that sets no ``train_defaults`` trains with.
FALLBACK_TRAINING: dict[str, Any] = {"epochs": 10, "batch_size": 64, "lr": 1e-3, "optimizer": "adam",
                                     "momentum": 0.9, "weight_decay": 0.0}


@dataclass(frozen=True)
class Training:
    """The training options a run uses: :class:`~sslzoo._contract.strategy.TrainOptions` (see there for what
    each means) with the dataset's defaults filled in, so that none of them is ``None``, and the
    settings of its recipe (:class:`~sslzoo._contract.recipe.Recipe`, see there)."""

    epochs: int
    batch_size: int
    samples_per_epoch: int
    last_batch: Literal["keep", "drop", "even"]
    lr: float
    optimizer: Literal["sgd", "adam", "adamw"]
    adam_epsilon: Literal["algorithm1", "hat"]
    momentum: float
    weight_decay: float
    weight_decay_on: Literal["all", "hidden_dense"]
    weight_decay_scale: Literal["none", "1/n"]
    lr_decay: float
    nesterov: bool
    lr_schedule: Literal["exponential", "fixmatch_cosine"]
    momentum_start: float | None
    momentum_epochs: int
    momentum_dampening: bool
    retrain: Literal["scratch", "warm"]
    fit_features: Literal["training_set", "initial_labels"]
    pretrain: str
    pretrain_use: Literal["finetune", "probe"]
    eval_every: int
    patience: int
    patience_start: bool
    validation: int
    validation_counted: bool
    recipe: str
    stop: str
    watch: str
    precision: Precision


def resolve_training(options: TrainOptions, defaults: Mapping[str, Any], recipe: Recipe, where: str) -> Training:
    """``options`` with each training option left at ``None`` taken from ``defaults`` (a dataset's
    ``train_defaults``), then from :data:`FALLBACK_TRAINING`, and the settings of ``recipe`` (the one
    ``options.recipe`` names); options that cannot work together are an
    :class:`~sslzoo.errors.OptionError` naming ``where`` (the strategy)."""
    fallback = {**FALLBACK_TRAINING, **defaults}
    settings = recipe.settings()
    values = {f.name: settings[f.name] if f.name in settings else getattr(options, f.name)
              for f in dataclasses.fields(Training)}
    values.update({name: fallback[name] for name, value in values.items() if value is None and name in fallback})
    training = Training(**values)
    check_training(training, where)
    return training


def check_training(training: Training, where: str) -> None:
    """A recipe and training options that cannot work together fail before any training."""
    for name in ("momentum_start", "momentum_dampening"):
        if getattr(training, name) not in (None, False) and training.optimizer != "sgd":
            raise OptionError(f"recipe {training.recipe!r} of {where} sets {name} and needs optimizer=sgd "
                              f"(momentum is an SGD option), got optimizer={training.optimizer}")
    if training.nesterov and (training.optimizer != "sgd" or not training.momentum):
        raise OptionError(f"option nesterov of {where} needs optimizer=sgd and a momentum above 0, got "
                          f"optimizer={training.optimizer}, momentum={training.momentum}")
    if training.lr_schedule == "fixmatch_cosine" and training.lr_decay != 1.0:
        raise OptionError(f"option lr_schedule=fixmatch_cosine of {where} sets the decay itself and needs lr_decay=1, "
                          f"got lr_decay={training.lr_decay}")
    if training.validation_counted and not training.validation:
        raise OptionError(f"option validation_counted of {where} counts a validation set and needs validation of "
                          f"at least 1, got validation=0")
    if training.momentum_start is not None and training.momentum_epochs < 1:
        raise OptionError(f"recipe {training.recipe!r} of {where} sets momentum_start={training.momentum_start} "
                          f"and needs momentum_epochs of at least 1")


def hidden_dense_weights(model: nn.Module) -> list[torch.Tensor]:
    """The weights (not biases) of every ``nn.Linear`` but the last one, in module order."""
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [m.weight for m in dense[:-1]]


def make_optimizer(model: nn.Module, training: Training, n_train: int) -> torch.optim.Optimizer:
    """The optimizer named by ``training.optimizer`` with its learning rate and L2 penalty.

    The penalty is ``weight_decay`` (divided by ``n_train``, the number of training samples, with
    ``weight_decay_scale="1/n"``) on every parameter, or with ``weight_decay_on="hidden_dense"``
    only on the weights of the dense layers before the output layer.
    """
    params = list(model.parameters())
    decay = training.weight_decay / max(1, n_train) if training.weight_decay_scale == "1/n" else training.weight_decay
    groups: list[dict[str, Any]]
    if training.weight_decay_on == "hidden_dense":
        penalised = {id(p) for p in hidden_dense_weights(model)}
        groups = [{"params": [p for p in params if id(p) in penalised], "weight_decay": decay},
                  {"params": [p for p in params if id(p) not in penalised], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": decay}]
    groups = [g for g in groups if g["params"]]
    # The fused kernels (CPU and CUDA) update all parameters in one pass: same algorithm, fewer launches.
    fused = True if params and all(p.device.type in ("cpu", "cuda") for p in params) else None  # None: torch's choice
    if training.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=training.lr, momentum=training.momentum, nesterov=training.nesterov,
                               fused=fused)
    hat = training.adam_epsilon == "hat"
    if training.optimizer == "adamw":
        return (AdamWEpsilonHat if hat else torch.optim.AdamW)(groups, lr=training.lr, fused=fused)
    return (AdamEpsilonHat if hat else torch.optim.Adam)(groups, lr=training.lr, fused=fused)


def schedule_epoch(optimizer: torch.optim.Optimizer, training: Training, epoch: int) -> None:
    """Set the learning rate (``lr`` × ``lr_decay`` ** ``epoch``, or with ``lr_schedule="fixmatch_cosine"``
    ``lr`` × cos(7π · ``epoch`` / (16 · ``epochs``)), Sohn et al. 2020) and, for SGD with
    ``momentum_start``, the momentum (linear from ``momentum_start`` to ``momentum`` over
    ``momentum_epochs`` epochs, then ``momentum``) of the coming epoch (0-based); with
    ``momentum_dampening`` the dampening follows the momentum (velocity = p·velocity + (1 - p)·grad)."""
    if training.lr_schedule == "fixmatch_cosine":
        lr = training.lr * math.cos(7.0 * math.pi * epoch / (16.0 * training.epochs))
    else:
        lr = training.lr * training.lr_decay ** epoch
    momentum, start = training.momentum, training.momentum_start
    if start is not None and epoch < training.momentum_epochs:
        momentum = start + (training.momentum - start) * epoch / training.momentum_epochs
    for group in optimizer.param_groups:
        group["lr"] = lr
        if "momentum" in group:
            group["momentum"] = momentum
            group["dampening"] = momentum if training.momentum_dampening else 0.0


class EarlyStopping:
    """``patience``: stop after ``patience`` epochs without a better test accuracy, then restore the
    weights of the best epoch (model selection on the test set, as some published protocols do). The
    test accuracy is ``score`` of the model's classes of the test set (the judge's
    :meth:`~sslzoo._engine.judge.Referee.accuracy`).

    An epoch is better only if its accuracy is strictly higher than the best so far; every better
    epoch restarts the count. With ``start`` (``patience_start``) the model's weights before the
    first epoch are the first candidate (epoch 0): a round that never beats them restores them.
    """

    def __init__(self, patience: int, x_test: torch.Tensor, score: Callable[[torch.Tensor], float], model: nn.Module,
                 precision: Precision = "auto", start: bool = False) -> None:
        self.patience, self.x_test, self.score, self.precision = patience, x_test, score, precision
        self.best, self.best_epoch = -1.0, 0
        self.best_state: dict[str, torch.Tensor] | None = None
        if start:
            self.stop(model, 0)

    def stop(self, model: nn.Module, epoch: int) -> bool:
        """After ``epoch`` epochs: keep the weights if the test accuracy is a new best; True to stop."""
        accuracy = self.score(inference.predicted_classes(model, self.x_test, precision=self.precision))
        if accuracy > self.best:
            self.best, self.best_epoch = accuracy, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return epoch - self.best_epoch >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
