"""The engine: one readable loop that runs any strategy on any dataset and model.

    seed → data on the device → model → for each round:
        select/label on the pool → move ids between the ledger's index sets
        train: for each step: labeled batch (+ unlabeled batch: select → label → weight) → loss → step
        evaluate on the test set → append an entry to the run's curve

Data lives on the device as tensors; batches are ``randperm`` slices, never a DataLoader.
Nothing in the step loop synchronises with the device: a non-finite loss is detected on the
device and reported once per epoch with the strategy, round, epoch and step.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sslzoo import inference
from sslzoo.adam import AdamEpsilonHat, AdamWEpsilonHat
from sslzoo.context import Context
from sslzoo.dataset import Dataset
from sslzoo.errors import OptionError, PluginError, TrainingError
from sslzoo.features import fit_features
from sslzoo.ledger import Ledger
from sslzoo.metrics import curve_metrics
from sslzoo.options import options_dict
from sslzoo.oracle import Oracle, OracleHandle
from sslzoo.prefix import SharedPrefix
from sslzoo.quality import Tally, difficulty_buckets
from sslzoo.record import round_float, versions
from sslzoo.registry import Registry, default_registry
from sslzoo.split import held_out, initial_labels
from sslzoo.strategy import ORACLE, Batch, EpochPlan, Labels, Strategy, TrainOptions

FALLBACK_TRAINING = {"epochs": 10, "batch_size": 64, "lr": 1e-3, "optimizer": "adam", "momentum": 0.9,
                     "weight_decay": 0.0}

Progress = Callable[[dict[str, Any]], None]


@dataclass
class RunSpec:
    """Everything that defines one run (a record reproduces it from these fields)."""

    strategy: str
    dataset: str = "mnist"
    labels: int = 1000
    seed: int = 0
    model: str | None = None
    device: str = "auto"
    split: str = "balanced"
    exclude_classes: tuple[int, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None  # the protocol preset this run belongs to (``sslzoo bench --preset``)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu" or name.startswith("cuda"):
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise OptionError(f"--device {name}: CUDA is not available on this machine; use auto or cpu")
        return torch.device(name)
    raise OptionError(f"--device {name!r} is not allowed: use auto, cpu, cuda or cuda:N")


def resolve_training(strategy: Strategy, dataset: Dataset) -> None:
    """Fill the strategy's training options left at ``None`` from the dataset's defaults."""
    defaults = {**FALLBACK_TRAINING, **dataset.train_defaults}
    fills = {f.name: defaults[f.name] for f in dataclasses.fields(TrainOptions)
             if getattr(strategy.options, f.name) is None and f.name in defaults}
    strategy.options = dataclasses.replace(strategy.options, **fills)


def check_training(opts: TrainOptions, where: str) -> None:
    """Training options that cannot work together fail before any training."""
    for name in ("momentum_start", "momentum_dampening"):
        if getattr(opts, name) not in (None, False) and opts.optimizer != "sgd":
            raise OptionError(f"option {name}={getattr(opts, name)} of {where} needs optimizer=sgd "
                              f"(momentum is an SGD option), got optimizer={opts.optimizer}")
    if opts.momentum_start is not None and opts.momentum_epochs < 1:
        raise OptionError(f"option momentum_start={opts.momentum_start} of {where} needs momentum_epochs of at "
                          f"least 1 (the epochs over which the momentum rises to {opts.momentum})")


def hidden_dense_weights(model: nn.Module) -> list[nn.Parameter]:
    """The weights (not biases) of every ``nn.Linear`` but the last one, in module order."""
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [m.weight for m in dense[:-1]]


def make_optimizer(model: nn.Module, opts: TrainOptions, n_train: int) -> torch.optim.Optimizer:
    """The optimizer named by ``opts.optimizer`` with its learning rate and L2 penalty.

    The penalty is ``weight_decay`` (divided by ``n_train``, the number of training samples, with
    ``weight_decay_scale="1/n"``) on every parameter, or with ``weight_decay_on="hidden_dense"``
    only on the weights of the dense layers before the output layer.
    """
    params = list(model.parameters())
    decay = opts.weight_decay / max(1, n_train) if opts.weight_decay_scale == "1/n" else opts.weight_decay
    if opts.weight_decay_on == "hidden_dense":
        penalised = {id(p) for p in hidden_dense_weights(model)}
        groups = [{"params": [p for p in params if id(p) in penalised], "weight_decay": decay},
                  {"params": [p for p in params if id(p) not in penalised], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": decay}]
    groups = [g for g in groups if g["params"]]
    # The fused kernels (CPU and CUDA) update all parameters in one pass: same algorithm, fewer launches.
    fast = {"fused": True} if params and all(p.device.type in ("cpu", "cuda") for p in params) else {}
    if opts.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=opts.lr, momentum=opts.momentum, **fast)
    hat = opts.adam_epsilon == "hat"
    if opts.optimizer == "adamw":
        return (AdamWEpsilonHat if hat else torch.optim.AdamW)(groups, lr=opts.lr, **fast)
    return (AdamEpsilonHat if hat else torch.optim.Adam)(groups, lr=opts.lr, **fast)


def schedule_epoch(optimizer: torch.optim.Optimizer, opts: TrainOptions, epoch: int) -> None:
    """Set the learning rate (``lr`` × ``lr_decay`` ** ``epoch``) and, for SGD with
    ``momentum_start``, the momentum (linear from ``momentum_start`` to ``momentum`` over
    ``momentum_epochs`` epochs, then ``momentum``) of the coming epoch (0-based); with
    ``momentum_dampening`` the dampening follows the momentum (velocity = p·velocity + (1 - p)·grad)."""
    lr = opts.lr * opts.lr_decay ** epoch
    momentum = opts.momentum
    if opts.momentum_start is not None and epoch < opts.momentum_epochs:
        momentum = opts.momentum_start + (opts.momentum - opts.momentum_start) * epoch / opts.momentum_epochs
    for group in optimizer.param_groups:
        group["lr"] = lr
        if "momentum" in group:
            group["momentum"] = momentum
            group["dampening"] = momentum if opts.momentum_dampening else 0.0


class PoolSampler:
    """Unlabeled batches drawn without replacement from the pool, reshuffled when exhausted."""

    def __init__(self, pool: torch.Tensor, generator: torch.Generator) -> None:
        self.pool, self.generator = pool, generator
        self.order = pool[:0]
        self.cursor = 0

    def draw(self, size: int) -> torch.Tensor:
        if self.cursor + size > self.order.numel():
            perm = torch.randperm(self.pool.numel(), generator=self.generator, device=self.pool.device)
            self.order, self.cursor = self.pool[perm], 0
        batch = self.order[self.cursor:self.cursor + size]
        self.cursor += size
        return batch


def epoch_steps(n_labeled: int, batch_size: int, n_pool: int, plan: EpochPlan) -> list[tuple[int, bool]]:
    """One epoch's steps as (labeled batch index within its pass or -1, draws an unlabeled batch).

    Joint steps (``plan.labeled_every == 0``): one labeled pass, each step with an unlabeled batch
    when the plan asks for one. Alternating steps (``labeled_every == N``): one pass over the pool
    in unlabeled-only steps, with a full labeled pass after every N of them (after the 1st, the
    (N+1)th, ... with ``plan.labeled_first``).
    """
    labeled_pass = [(b, False) for b in range(math.ceil(n_labeled / batch_size))]
    size = plan.unlabeled_batch_size if n_pool else 0
    if size == 0:
        return labeled_pass
    if plan.labeled_every == 0:
        return [(b, True) for b, _ in labeled_pass]
    steps: list[tuple[int, bool]] = []
    for u in range(1, max(1, n_pool // size) + 1):
        steps.append((-1, True))
        if (u - plan.labeled_first) % plan.labeled_every == 0:
            steps.extend(labeled_pass)
    return steps


def check_selection(where: str, chosen: torch.Tensor, candidates: torch.Tensor) -> None:
    """A selection must be unique global ids taken from the candidates."""
    if not isinstance(chosen, torch.Tensor) or chosen.dim() != 1 or chosen.dtype != torch.long:
        got = (f"a tensor of shape {tuple(chosen.shape)} and dtype {chosen.dtype}"
               if isinstance(chosen, torch.Tensor) else type(chosen).__name__)
        raise PluginError(f"{where}: select must return a 1-D int64 tensor of global ids, got {got}")
    if chosen.unique().numel() != chosen.numel():
        raise PluginError(f"{where}: select returned duplicate ids")
    if not torch.isin(chosen, candidates).all():
        raise PluginError(f"{where}: select returned ids that are not in the unlabeled pool")


def check_labels(where: str, labels: Labels, chosen: torch.Tensor, oracle: OracleHandle, expected_queries: int,
                 truth: Oracle) -> None:
    """``label`` must label exactly the selected ids, asking ``oracle`` for the expected number of them
    and returning its answers, unchanged, as the only oracle labels."""
    if labels.ids.numel() != chosen.numel() or not torch.isin(labels.ids, chosen).all():
        raise PluginError(f"{where}: label must return labels for exactly the selected ids")
    answered = oracle.answered()
    if answered.numel() != expected_queries:
        raise PluginError(f"{where}: select returned {chosen.numel()} ids and label asked the oracle for "
                          f"{answered.numel()} of them; its query_count allows exactly {expected_queries}")
    given = labels.source == ORACLE
    marked = labels.ids[given]
    if marked.numel() != answered.numel() or not torch.equal(marked.sort().values, answered):
        raise PluginError(f"{where}: label returned {marked.numel()} labels marked as oracle labels for the "
                          f"{answered.numel()} ids the oracle answered; the oracle's answers, and only they, "
                          f"are oracle labels")
    changed = int((labels.targets[given] != truth.reveal(marked)).sum())
    if changed:
        raise PluginError(f"{where}: label changed {changed} of the oracle's answers")


class EarlyStopping:
    """``patience``: stop after ``patience`` epochs without a better test accuracy, then restore the
    weights of the best epoch (model selection on the test set, as some published protocols do).

    An epoch is better only if its accuracy is strictly higher than the best so far; every better
    epoch restarts the count. With ``start`` (``patience_start``) the model's weights before the
    first epoch are the first candidate (epoch 0): a round that never beats them restores them.
    """

    def __init__(self, patience: int, x_test: torch.Tensor, y_test: torch.Tensor, model: nn.Module,
                 precision: inference.Precision = "auto", start: bool = False) -> None:
        self.patience, self.x_test, self.y_test, self.precision = patience, x_test, y_test, precision
        self.best, self.best_epoch, self.best_state = -1.0, 0, None
        if start:
            self.stop(model, 0)

    def stop(self, model: nn.Module, epoch: int) -> bool:
        """After ``epoch`` epochs: keep the weights if the test accuracy is a new best; True to stop."""
        accuracy = float(inference.accuracy(model, self.x_test, self.y_test, precision=self.precision))
        if accuracy > self.best:
            self.best, self.best_epoch = accuracy, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return epoch - self.best_epoch >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


class Run:
    """One strategy × dataset × seed: state, the round loop and the record."""

    def __init__(self, spec: RunSpec, strategy: Strategy, registry: Registry | None = None,
                 progress: Progress | None = None) -> None:
        self.spec, self.strategy = spec, strategy
        self.registry = registry or default_registry()
        self.progress = progress
        self.dataset: Dataset = self.registry.datasets.get(spec.dataset).obj(**spec.dataset_options)
        self.model_name = spec.model or self.dataset.default_model
        self.model_spec = self.registry.models.get(self.model_name).obj
        self.device = resolve_device(spec.device)
        resolve_training(strategy, self.dataset)
        self.opts: TrainOptions = strategy.options
        check_training(self.opts, f"strategy {strategy.name!r}")
        self.where = f"strategy {strategy.name!r} (plugin " + ", ".join(
            self.registry.strategies.get(part.name).plugin.label() for part in strategy.parts()) + ")"

    # -- set-up ----------------------------------------------------------------------------
    def _load(self) -> None:
        arrays = self.dataset.load(self.spec.seed)
        dev = self.device
        self.x = self.dataset.normalize(arrays.x_train.to(dev))
        self.x_test = self.dataset.normalize(arrays.x_test.to(dev))
        self.y_test = arrays.y_test.to(dev)
        self.oracle = Oracle(arrays.y_train.to(dev))  # the truth stays here: the context never holds it
        self.ledger = Ledger(arrays.y_train.numel(), dev)
        initial = initial_labels(arrays.y_train, self.spec.labels, self.spec.seed, self.spec.split,
                                 self.spec.exclude_classes).to(dev)
        self.ledger.assign(self.oracle.labels(initial), torch.ones(initial.numel(), device=dev), 0)
        self.ledger.hold_out(held_out(arrays.y_train.numel(), self.spec.seed, self.spec.split, initial).to(dev))
        self.initial_ids = initial
        self.initial_labels = initial.numel()

    def _fresh_model(self) -> None:
        self.model = self.model_spec.build(tuple(self.x.shape[1:]), self.dataset.num_classes).to(self.device)
        fitted_on = self.initial_ids if self.opts.fit_features == "initial_labels" else self.ledger.train()
        fit_features(self.model, self.x[fitted_on])
        if self.x.dim() == 4:  # images: channels_last convolutions (faster on CUDA and on the CPU here)
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, self.opts, int(self.ledger.train().numel()))
        self.activation = inference.output_activation(self.model)
        self.ctx.model = self.model
        self.prefix = self.ctx.prefix = SharedPrefix(self.model, self.opts.precision)

    # -- the loop --------------------------------------------------------------------------
    def setup(self) -> None:
        """Seed, load the data onto the device and build the context (the first part of :meth:`execute`)."""
        torch.manual_seed(self.spec.seed)
        self._load()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.spec.seed)
        self.ctx = Context(model=nn.Identity(), x=self.x, ledger=self.ledger, generator=generator,
                           num_classes=self.dataset.num_classes, seed=self.spec.seed, epochs=self.opts.epochs,
                           precision=self.opts.precision)
        self.ctx._where = self.where

    def train_round(self, rnd: int, curve: list[dict[str, Any]] | None = None) -> Tally | None:
        """Round ``rnd``'s training: a fresh model when due (round 0, or ``retrain="scratch"``), then
        ``epochs`` epochs (see :meth:`_train`). Public so that a benchmark can time training alone."""
        self.ctx.round, self.ctx.phase = rnd, "round"
        if rnd == 0 or self.opts.retrain == "scratch":
            self._fresh_model()
        return self._train(rnd, [] if curve is None else curve)

    def execute(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.setup()
        self.strategy.check(self.ctx)  # options that cannot work here fail before any training
        run_info = self._run_info()
        self.registry.notify("run_started", run=run_info)
        curve: list[dict[str, Any]] = []
        termination = "single_round"
        for rnd in range(1_000_000):
            self.ctx.round, self.ctx.phase = rnd, "round"
            if rnd > 0:
                reason = self.strategy.stop(self.ctx) or self._acquire(rnd)
                if reason:
                    termination = reason
                    break
            step_tally = self.train_round(rnd, curve)
            entry = self._entry(rnd, self.opts.epochs, step_tally)
            if self.opts.patience:
                entry["best_epoch"] = self.best_epoch  # the epoch whose weights were kept
            curve.append(entry)
            self.registry.notify("round_ended", run=run_info, entry=entry)
        record = self._record(curve, termination, time.perf_counter() - started)
        self.registry.notify("run_ended", record=record)
        return record

    def _acquire(self, rnd: int) -> str | None:
        """One round's select → label → weight on the pool; a reason to stop, or None."""
        pool = self.ledger.pool()
        if pool.numel() == 0:
            return "pool_empty"
        where = f"{self.where}, round {rnd}"
        expected = self.strategy.query_count(self.ctx, pool.numel())
        chosen = self.strategy.select(self.ctx, pool)
        check_selection(where, chosen, pool)
        if chosen.numel() == 0:
            return "nothing_selected"
        oracle = self.oracle.handle(chosen, expected, where)
        with self.ctx.asking(oracle):  # label may ask the oracle for its own ids, up to query_count of them
            labels = self.strategy.label(self.ctx, chosen)
        check_labels(where, labels, chosen, oracle, expected, self.oracle)
        self.ledger.assign(labels, self.strategy.weight(self.ctx, labels), rnd)
        return None

    def _train(self, rnd: int, curve: list[dict[str, Any]]) -> Tally | None:
        """Train for ``epochs`` epochs; returns the step phase's pseudo-label tally (None: no step phase).

        Each epoch follows the strategy's ``epoch_plan`` (see :func:`epoch_steps`); every labeled
        pass starts from a fresh shuffle of the labeled set. With ``eval_every`` N, a mid-round
        entry (``epoch`` < ``epochs``) joins ``curve`` every N epochs. With ``patience`` N, training
        stops after N epochs without a better test accuracy and the best weights are restored (with
        ``patience_start`` the weights the round started from are the first candidate).
        """
        ctx, opts, model = self.ctx, self.opts, self.model
        train_ids = self.ledger.train()
        n, bs = train_ids.numel(), opts.batch_size
        pool = self.ledger.pool()
        sampler = PoolSampler(pool, ctx.generator)
        semi = self.strategy.unlabeled_batch_size() > 0
        tally = Tally(self.device, self.ledger.source.numel())
        epochs = opts.epochs
        order = train_ids
        stopper = (EarlyStopping(opts.patience, self.x_test, self.y_test, model, opts.precision,
                                 opts.patience_start) if opts.patience else None)
        last_batch = math.ceil(n / bs) - 1
        ctx.unlabeled_batches = ctx.labeled_passes = 0
        for epoch in range(epochs):
            schedule_epoch(self.optimizer, opts, epoch)
            model.train()
            ctx.epoch, ctx.step_in_epoch = epoch, 0
            plan = self.strategy.epoch_plan(ctx)
            semi = semi or plan.unlabeled_batch_size > 0
            schedule = epoch_steps(n, bs, pool.numel(), plan)
            steps = ctx.steps_per_epoch = len(schedule)
            bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
            bad_selection = torch.zeros((), dtype=torch.bool, device=self.device)
            loss_sum = torch.zeros((), device=self.device)
            for s, (b, draws_unlabeled) in enumerate(schedule):
                ctx.phase, ctx.step_in_epoch = "step", s
                if b == 0:  # a labeled pass starts
                    order = train_ids[torch.randperm(n, generator=ctx.generator, device=self.device)]
                ids = order[b * bs:(b + 1) * bs] if b >= 0 else train_ids[:0]
                labeled = Batch(ids, self.x[ids], self.ledger.target[ids], self.ledger.weight[ids])
                unlabeled = None
                if draws_unlabeled:
                    ctx.unlabeled_batches += 1
                    candidates = sampler.draw(plan.unlabeled_batch_size)
                    if b < 0:  # a step on the unlabeled batch alone: its prediction may share the prefix
                        self.prefix.arm(self.x, candidates)
                    unlabeled = self._unlabeled_batch(candidates, tally, bad_selection)
                loss = self._step(labeled, unlabeled)
                bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), ctx.step, bad_step)
                loss_sum += loss.detach()
                ctx.step += 1
                ctx.labeled_passes += b == last_batch
            self._check_finite(rnd, epoch, steps, bad_step)
            if bool(bad_selection):
                raise PluginError(f"{self.where}: in the step phase, select returned duplicate ids or ids "
                                  f"that are not in the unlabeled batch (round {rnd}, epoch {epoch + 1})")
            if self.progress is not None:
                self.progress({"round": rnd, "epoch": epoch + 1, "epochs": epochs,
                               "loss": float(loss_sum) / max(1, steps), "labels": n})
            if opts.eval_every and (epoch + 1) % opts.eval_every == 0 and epoch + 1 < epochs:
                curve.append(self._entry(rnd, epoch + 1, tally if semi else None))
            if stopper is not None and stopper.stop(model, epoch + 1):
                break
        if stopper is not None:
            stopper.restore(model)
            self.best_epoch = stopper.best_epoch
        return tally if semi else None

    def _unlabeled_batch(self, candidates: torch.Tensor, tally: Tally, bad: torch.Tensor) -> Batch:
        """The step phase: select among an unlabeled batch, label it, weigh it, tally its quality.

        A selection of duplicates or of ids outside the batch sets ``bad`` on the device (checked
        once per epoch: no host sync per step).
        """
        chosen = self.strategy.select(self.ctx, candidates)
        ordered = chosen.sort().values
        bad |= ~torch.isin(chosen, candidates).all() | (ordered[1:] == ordered[:-1]).any()
        labels = self.strategy.label(self.ctx, chosen)
        if labels.ids.shape != chosen.shape:
            raise PluginError(f"{self.where}: in the step phase, label must return labels for exactly the "
                              f"selected ids")
        weights = self.strategy.weight(self.ctx, labels)
        tally.add(difficulty_buckets(labels.confidence), labels.targets == self.oracle.reveal(chosen))
        tally.mark(chosen)
        return Batch(chosen, self.prefix.inputs(self.x, chosen), labels.targets, weights)

    def _step(self, labeled: Batch, unlabeled: Batch | None) -> torch.Tensor:
        """One optimizer step on the labeled (and unlabeled) batch, in one forward pass (which starts
        from the pseudo-label forward's shared prefix when the step trains on that batch alone)."""
        labeled = self.strategy.transform(self.ctx, labeled)
        if unlabeled is not None:
            unlabeled = self.strategy.transform(self.ctx, unlabeled)
        alone = unlabeled.x if unlabeled is not None and labeled.ids.numel() == 0 else None
        with inference.autocast(self.device, self.opts.precision):
            logits = self.prefix.logits(alone)
            if logits is None:
                logits = self.model(labeled.x if unlabeled is None else torch.cat([labeled.x, unlabeled.x]))
            labeled.logits, labeled.activation = logits[:labeled.ids.numel()], self.activation
            if unlabeled is not None:
                unlabeled.logits, unlabeled.activation = logits[labeled.ids.numel():], self.activation
            loss = self.strategy.loss(self.ctx, labeled, unlabeled)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def _check_finite(self, rnd: int, epoch: int, steps: int, bad_step: torch.Tensor) -> None:
        step = int(bad_step)
        if step >= 0:
            raise TrainingError(f"the loss of strategy {self.strategy.name!r} is not finite at round {rnd}, "
                                f"epoch {epoch + 1}, step {step} (step {step - self.ctx.step + steps} "
                                f"of that epoch); try a lower learning rate")

    # -- reporting -------------------------------------------------------------------------
    def _entry(self, rnd: int, epoch: int, step_tally: Tally | None) -> dict[str, Any]:
        """A curve entry after ``epoch`` epochs of round ``rnd``: labels, pseudo-labels, test accuracy.

        Pseudo-label quality is the step phase's tally so far, or the ledger's pseudo-labels:
        ``pseudo_labels`` counts the pseudo-labels given (per step, every draw), ``pseudo_ids`` the
        distinct ids that got one.
        """
        accuracy = inference.accuracy(self.model, self.x_test, self.y_test, precision=self.opts.precision)
        tally = step_tally
        if tally is None:
            tally = Tally(self.device, self.ledger.source.numel())
            pseudo = self.ledger.pseudo()
            tally.add(self.ledger.bucket[pseudo], self.ledger.target[pseudo] == self.oracle.reveal(pseudo))
            tally.mark(pseudo)
        self.pseudo_summary = tally.summary()
        return {"round": rnd, "epoch": epoch, "epochs": self.opts.epochs,
                "labels": int(self.ledger.oracle().numel()),
                "pseudo_labels": self.pseudo_summary["count"],
                "pseudo_ids": self.pseudo_summary["ids"],
                "pseudo_accuracy": self.pseudo_summary["accuracy"],
                "test_accuracy": round_float(float(accuracy))}

    def _run_info(self) -> dict[str, Any]:
        return {"strategy": self.strategy.name, "dataset": self.spec.dataset, "model": self.model_name,
                "seed": self.spec.seed, "options": self.strategy.resolved_options(),
                "device": str(self.device)}

    def _record(self, curve: list[dict[str, Any]], termination: str, wall: float) -> dict[str, Any]:
        plugins = [self.registry.strategies.get(part.name).plugin for part in self.strategy.parts()]
        record = {
            "strategy": self.strategy.name,
            "family": self.strategy.family,
            "options": self.strategy.resolved_options(),
            "dataset": self.spec.dataset,
            "preset": self.spec.preset,
            "dataset_options": options_dict(self.dataset.options),
            "model": self.model_name,
            "seed": self.spec.seed,
            "split": {"how": self.spec.split, "exclude_classes": list(self.spec.exclude_classes)},
            "labels": self.initial_labels,
            "oracle_labels": curve[-1]["labels"],
            "test_accuracy": curve[-1]["test_accuracy"],
            "termination": termination,
            "curve": curve,
            "pseudo": self.pseudo_summary,
            "al_metrics": curve_metrics([e for e in curve if e["epoch"] == e["epochs"]]),
            "wall_seconds": round_float(wall, 3),
            "device": str(self.device),
            "versions": versions(plugins),
        }
        boundary = decision_boundary(self)
        if boundary is not None:
            record["boundary"] = boundary
        return record


# -- the decision boundary of 2-D datasets (drawn by ``sslzoo report``) ---------------------------------
BOUNDARY_GRID = 60  # grid points per axis
BOUNDARY_POOL_POINTS = 400  # unlabeled points kept (evenly spaced ids) to show the data and the pseudo-labels


def decision_boundary(run: Run) -> dict[str, Any] | None:
    """For 2-D inputs only: the final model's class on a grid over the training data, and the
    training points that were labeled at the start, queried from the oracle, pseudo-labeled, or
    left in the pool (a subsample, with the model's class, i.e. the pseudo-label it would get).

    Coordinates are the model's inputs (after the dataset's ``normalize``), rounded to 3 decimals;
    ``classes`` holds one string of digits per grid row (bottom row first) when there are at most
    10 classes, else lists of ints. ``correct`` flags compare with the hidden truth.
    """
    x = run.x
    if x.dim() != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        return None
    lo, hi = x.min(dim=0).values, x.max(dim=0).values
    pad = 0.1 * (hi - lo) + 1e-3
    lo, hi = lo - pad, hi + pad
    n = BOUNDARY_GRID
    gy, gx = torch.meshgrid(torch.linspace(float(lo[1]), float(hi[1]), n, device=x.device),
                            torch.linspace(float(lo[0]), float(hi[0]), n, device=x.device), indexing="ij")
    grid = torch.stack([gx.flatten(), gy.flatten()], dim=1)
    precision = run.opts.precision
    classes = inference.probabilities(run.model, grid, torch.arange(n * n, device=x.device),
                                      precision=precision).argmax(dim=1)
    rows = classes.view(n, n).tolist()
    ledger, truth = run.ledger, run.oracle.reveal

    def points(ids: torch.Tensor, **extra: torch.Tensor) -> dict[str, list]:
        out: dict[str, list] = {"ids": ids.tolist(), "xy": [[round(a, 3), round(b, 3)] for a, b in x[ids].tolist()]}
        out.update({key: value.tolist() for key, value in extra.items()})
        return out

    oracle = ledger.oracle()
    first = ledger.round[oracle] <= 0
    pseudo = ledger.pseudo()
    pool = ledger.pool()
    pool = pool[torch.linspace(0, pool.numel() - 1, min(pool.numel(), BOUNDARY_POOL_POINTS),
                               device=x.device).long()] if pool.numel() else pool
    pool_pred = (inference.probabilities(run.model, x, pool, precision=precision).argmax(dim=1) if pool.numel()
                 else pool.new_zeros(0))
    return {
        "grid": {"x": [round(float(lo[0]), 4), round(float(hi[0]), 4)],
                 "y": [round(float(lo[1]), 4), round(float(hi[1]), 4)], "size": n,
                 "classes": ["".join(map(str, r)) for r in rows] if run.dataset.num_classes <= 10 else rows},
        "labeled": points(oracle[first], label=ledger.target[oracle[first]]),
        "queried": points(oracle[~first], label=ledger.target[oracle[~first]], round=ledger.round[oracle[~first]]),
        "pseudo": points(pseudo, label=ledger.target[pseudo], correct=ledger.target[pseudo] == truth(pseudo)),
        "pool": points(pool, pred=pool_pred, correct=pool_pred == truth(pool)),
    }
