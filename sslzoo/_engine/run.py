"""The engine: one readable loop that runs any strategy on any dataset and model.

    seed → data on the device → for each round:
        (after round 0) stop? → select → label → weight on the pool → move ids between the ledger's
        index sets
        a fresh model when due → train: for each step:
            labeled batch (+ unlabeled ids) → loss (and what it pseudo-labeled, reported to the
            judge) → optimizer step → the teachers follow the model
        evaluate (the strategy's evaluated model) on the test set → its classes to the judge, which
        scores them into the run's curve
    → the record, without its figures, to the judge

:meth:`Run.learn` is that loop, top to bottom; the judge (:mod:`sslzoo._engine.judge`) holds the truth and
every figure, in this process (:meth:`Run.execute`) or another (:mod:`sslzoo._engine.learner`).
The run's state is made in two places: the data (:class:`RunData`: inputs on the device, the
ledger; no hidden label) and the strategy's
:class:`~sslzoo._contract.context.Context` once, by :meth:`Run.setup`; the model with its optimizer and
teachers (:class:`Learner`) by :meth:`Run.fresh_learner` at round 0 and, with ``retrain=scratch``,
every round. Everything else is passed and returned.

Data lives on the device as tensors; batches are ``randperm`` slices, never a DataLoader.
Inputs memory-mapped from a dataset's cache file, or too large to convert at once, stay in their
stored dtype on the host and are converted batch by batch (:mod:`sslzoo._ops.stored`).
Nothing in the step loop synchronises with the device: a non-finite loss is detected on the
device and reported once per epoch with the strategy, round, epoch and step.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from sslzoo._contract.context import Context
from sslzoo._contract.dataset import UNLABELED, Arrays, Dataset
from sslzoo._contract.labels import ORACLE, Labels
from sslzoo._contract.ledger import Ledger
from sslzoo._contract.options import options_dict
from sslzoo._contract.oracle import OracleHandle
from sslzoo._contract.record import round_float, versions
from sslzoo._contract.registry import ModelSpec, Registry, default_registry
from sslzoo._contract.strategy import Batch, EpochPlan, PseudoLabels, Step, StepLoss, Strategy, TrainOptions
from sslzoo._datasets import tensor_cache
from sslzoo._datasets.split import held_out, initial_labels
from sslzoo._engine.boundary import decision_boundary
from sslzoo._engine.ensemble import member_seeds, train_ensemble
from sslzoo._engine.judge import Judge, Referee
from sslzoo._engine.machine import machine
from sslzoo._engine.pretraining import NOTE, Pretraining, pretrained_build
from sslzoo._engine.stopping_rule import Stopping, Watching
from sslzoo._engine.training import EarlyStopping, Training, make_optimizer, resolve_training, schedule_epoch
from sslzoo._ops import inference
from sslzoo._ops.batches import pass_bounds, pass_length, pass_order
from sslzoo._ops.ensemble import Ensemble
from sslzoo._ops.features import fit_features, fitted_depth, tabulate
from sslzoo._ops.quality import Tally, difficulty_buckets
from sslzoo._ops.stored import model_inputs
from sslzoo._ops.teacher import Teachers
from sslzoo._strategies import composite
from sslzoo.errors import DataError, OptionError, PluginError, TrainingError

Progress = Callable[[dict[str, Any]], None]
Record = dict[str, Any]
Trace = Callable[[str, Context, tuple[Any, ...]], None]
"""Told what each hook returned, after it returned: ``(hook, ctx, returned)`` (:attr:`Run.trace`)."""


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


def record_options(strategy: Strategy, training: Training) -> dict[str, Any]:
    """The strategy's options as its record reports them, the training options as the run uses them
    (a ``None`` left for the dataset's default is the value it got). A training option recorded only
    when set (``recorded="when set"`` in its metadata) is left out at its default, so that the records
    of runs that do not set it read as those made before it existed."""
    used = vars(training)
    quiet = {f.name: f.default for f in dataclasses.fields(TrainOptions) if f.metadata.get("recorded") == "when set"}
    options = {key: used.get(key, value) for key, value in strategy.resolved_options().items()}
    return {key: value for key, value in options.items() if key not in quiet or value != quiet[key]}


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


def epoch_steps(n_labeled: int, batch_size: int, n_pool: int, plan: EpochPlan,
                last_batch: str = "keep") -> list[tuple[int, bool]]:
    """One epoch's steps as (labeled batch index within its pass or -1, draws an unlabeled batch), for a
    labeled pass of ``n_labeled`` samples cut by ``last_batch`` (:func:`sslzoo._ops.batches.pass_bounds`).

    Joint steps (``plan.labeled_every == 0``): one labeled pass, each step with an unlabeled batch
    when the plan asks for one. Alternating steps (``labeled_every == N``): one pass over the pool
    in unlabeled-only steps, with a full labeled pass after every N of them (after the 1st, the
    (N+1)th, ... with ``plan.labeled_first``).
    """
    labeled_pass = [(b, False) for b in range(len(pass_bounds(n_labeled, batch_size, last_batch)))]
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


SHOWN_IDS = 5
"""How many offending ids an error message lists."""


def some_ids(ids: torch.Tensor) -> str:
    """``"3 of them: 4, 17, 52"``, naming at most ``SHOWN_IDS`` of the ids, for error messages."""
    shown = ", ".join(str(i) for i in ids[:SHOWN_IDS].tolist())
    return f"{ids.numel()} of them: {shown}" + (", ..." if ids.numel() > SHOWN_IDS else "")


def check_selection(where: str, chosen: torch.Tensor, candidates: torch.Tensor) -> None:
    """A selection must be unique global ids taken from the candidates; an error names up to
    ``SHOWN_IDS`` offending ids."""
    if not isinstance(chosen, torch.Tensor) or chosen.dim() != 1 or chosen.dtype != torch.long:
        got = (f"a tensor of shape {tuple(chosen.shape)} and dtype {chosen.dtype}"
               if isinstance(chosen, torch.Tensor) else type(chosen).__name__)
        raise PluginError(f"{where}: select must return a 1-D int64 tensor of global ids, got {got}")
    values, counts = chosen.unique(return_counts=True)
    if (counts > 1).any():
        raise PluginError(f"{where}: select returned duplicate ids ({some_ids(values[counts > 1])})")
    outside = chosen[~torch.isin(chosen, candidates)]
    if outside.numel():
        raise PluginError(f"{where}: select returned ids that are not in the unlabeled pool ({some_ids(outside)}); "
                          f"select returns global dataset ids taken from its candidates, never positions in them")


def check_labels(where: str, labels: Labels, chosen: torch.Tensor, oracle: OracleHandle, expected_queries: int) -> None:
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
    changed = oracle.changed(marked, labels.targets[given])
    if changed:
        raise PluginError(f"{where}: label changed {changed} of the oracle's answers")


@dataclass
class RunData:
    """A run's data as the learner holds it, on its device: the normalized training and test inputs,
    the ledger of which training ids hold which label (no hidden label: the truth is the judge's,
    :mod:`sslzoo._engine.judge`), the class names, how many training samples have no label (left out of
    the run) and the validation set, if the run has one (its ids, held out of the pool and of
    training, and their labels)."""

    x: torch.Tensor
    x_test: torch.Tensor
    ledger: Ledger
    initial_ids: torch.Tensor  # the starting labels
    classes: list[str]
    unlabeled: int = 0
    validation_ids: torch.Tensor | None = None
    validation_targets: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def check_arrays(arrays: Arrays, dataset: str, num_classes: int) -> Arrays:
    """A dataset's tensors must pair each sample with one label, a class index in ``[0, num_classes)``
    or ``-1`` (no label), and hold training samples; a DataError names the dataset otherwise. Returns
    them with int64 labels."""
    if num_classes < 1:
        raise DataError(f"dataset {dataset!r} names no classes: set num_classes or return Arrays with classes")
    for part, x, y in (("training", arrays.x_train, arrays.y_train), ("test", arrays.x_test, arrays.y_test)):
        if y.dim() != 1 or x.shape[:1] != y.shape or y.dtype.is_floating_point or y.dtype.is_complex \
                or y.dtype == torch.bool:
            raise DataError(f"dataset {dataset!r}: {part} inputs {tuple(x.shape)} and labels {tuple(y.shape)} "
                            f"{y.dtype}; expected one integer label per sample")
        bad = y[(y < UNLABELED) | (y >= num_classes)]
        if bad.numel():
            raise DataError(f"dataset {dataset!r}: a {part} label is {int(bad[0])}, outside its classes "
                            f"0-{num_classes - 1} (or -1: no label)")
    if arrays.y_train.numel() == 0:
        raise DataError(f"dataset {dataset!r} has no training samples")
    return dataclasses.replace(arrays, y_train=arrays.y_train.long(), y_test=arrays.y_test.long())


VALIDATION_STREAM = 0x5EED_0A11DA7E
"""Mixed into the run's seed for the validation set's draw, so that it is not the starting labels'."""


def load_data(dataset: Dataset, spec: RunSpec, device: torch.device, notify: Callable[..., None] | None = None,
              validation: int = 0, counted: bool = False) -> tuple[RunData, Judge]:
    """The dataset on ``device``: the learner's data, with the starting labels of ``spec`` in the
    ledger (round 0) and the ids the split holds out marked, and the judge that holds the truth
    (calling ``notify`` for the observers). A benchmark simulates the labeler with the dataset's
    labels: the test split must be labeled, and training samples without a label are held out of
    the run. ``validation`` ids drawn at random from the pool, with the run's seed, are labeled by
    the judge (among the oracle labels if ``counted``) and held out of the pool and of training."""
    arrays = dataset.load(spec.seed)
    classes = arrays.class_names(dataset.num_classes)
    arrays = check_arrays(arrays, spec.dataset, len(classes))
    if not arrays.has_test_labels():
        how = f": {dataset.test_help}" if dataset.test_help else ""
        why = "its test samples have no labels" if arrays.y_test.numel() else "it has no test split"
        raise DataError(f"dataset {spec.dataset!r} has no labeled test split ({why}), and a benchmark measures "
                        f"accuracy on one; give it one{how}")
    known = (arrays.y_train >= 0).nonzero().flatten()
    judge = Judge(arrays.y_train.to(device), arrays.y_test.to(device), len(classes), notify)  # the truth stays with it
    ledger = Ledger(arrays.y_train.numel(), device)
    initial = known[initial_labels(arrays.y_train[known], spec.labels, spec.seed, spec.split, spec.exclude_classes,
                                   classes)]
    ledger.assign(judge.starting_labels(initial.to(device)), torch.ones(initial.numel(), device=device), 0)
    left_out = held_out(known.numel(), spec.seed, spec.split, torch.searchsorted(known, initial))
    unknown = (arrays.y_train < 0).nonzero().flatten()
    ledger.hold_out(torch.cat([known[left_out], unknown]).to(device))
    x, x_test = (model_inputs(raw, dataset.normalize, device, tensor_cache.source_of(raw))
                 for raw in (arrays.x_train, arrays.x_test))  # stored, converted per batch, when mapped or large
    data = RunData(x=x, x_test=x_test, ledger=ledger, initial_ids=initial.to(device), classes=classes,
                   unlabeled=unknown.numel())
    if validation:
        pool = ledger.pool().cpu()
        if validation > pool.numel():
            raise OptionError(f"option validation={validation} is not allowed: the pool of dataset {spec.dataset!r} "
                              f"has {pool.numel()} ids after the starting labels; ask for at most {pool.numel()}")
        draw = torch.randperm(pool.numel(), generator=torch.Generator().manual_seed(spec.seed ^ VALIDATION_STREAM))
        chosen = pool[draw[:validation]].sort().values.to(device)
        data.validation_ids = chosen
        data.validation_targets = judge.starting_labels(chosen, counted).targets
        ledger.hold_out(chosen)
    return data, judge


@dataclass
class Learner:
    """The model being trained and what goes with it: its optimizer, how its logits score the
    classes (``softmax`` or ``sigmoid``) and the teachers that follow it (:mod:`sslzoo._ops.teacher`)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    activation: str
    teachers: Teachers


@dataclass
class Members:
    """``ctx.ensemble``: ``members`` fresh copies of the run's model trained on the round's training set
    (:mod:`sslzoo._engine.ensemble`). It holds what that needs of the run and nothing more: the context
    reaches it, so it must not reach the judge (no hidden label is reachable from the context)."""

    build: Callable[[tuple[int, ...], int], nn.Module]
    shape: tuple[int, ...]
    num_classes: int
    device: torch.device
    seed: int
    data: RunData
    training: Training
    ctx: Context
    inputs: torch.Tensor  # as loaded, before a fitted prefix
    fitted_on: torch.Tensor | None = None  # the ids the run's model fitted its feature layers on

    def __call__(self, members: int) -> Ensemble:
        seeds = member_seeds(self.seed, self.ctx.round, members)
        return train_ensemble(self.fresh_member, seeds, self.data.x, self.data.ledger, self.training,
                              self.ctx.activation)

    def fresh_member(self) -> nn.Module:
        """An untrained model (initialised from torch's generator as it stands), its feature layers fitted
        as the run's model's were: on the same ids, or, for a fitted prefix, the run's (whose outputs the
        run's inputs already are), so the member is the rest of the model."""
        model = self.build(self.shape, self.num_classes).to(self.device)
        depth = fitted_depth(model)
        if not depth:
            fit_features(model, self.inputs[self.fitted_on])
            return model
        rest = nn.Sequential(*list(model.children())[depth:])
        rest.__dict__.update({k: v for k, v in vars(model).items() if not k.startswith("_")})  # its output_activation
        return rest


class Fit(NamedTuple):
    """What a round's training returns: the step phase's pseudo-label tally (None: the round had no
    step phase) and, with ``patience`` or a validation set, the epoch whose weights were kept."""

    tally: Tally | None
    best_epoch: int | None


@dataclass(frozen=True)
class Resolved:
    """What a run's spec resolves to before anything is loaded: the dataset (built, not read), the
    model, the training options the run uses and the options its record reports."""

    dataset: Dataset
    model_name: str
    model_spec: ModelSpec
    training: Training
    options: dict[str, Any]


def resolve(spec: RunSpec, strategy: Strategy, registry: Registry) -> Resolved:
    """Resolve ``spec`` for ``strategy``: what :class:`Run` runs and what a planned run's record will
    say (:func:`sslzoo._results.store.planned_record`), computed the same way for both."""
    dataset = registry.datasets.get(spec.dataset).obj(**spec.dataset_options)
    model_name = spec.model or dataset.default_model
    recipe = registry.recipes.get(strategy.options.recipe).obj
    training = resolve_training(strategy.options, dataset.train_defaults, recipe, f"strategy {strategy.name!r}")
    return Resolved(dataset, model_name, registry.models.get(model_name).obj, training,
                    record_options(strategy, training))


class Run:
    """One strategy × dataset × seed: the round loop and its record.

    Building a run resolves and checks everything (dataset, model, device, training options) and
    loads nothing; the strategy's own options are left as given. :meth:`execute` runs it.
    """

    def __init__(self, spec: RunSpec, strategy: Strategy, registry: Registry | None = None,
                 progress: Progress | None = None) -> None:
        self.spec, self.strategy = spec, strategy
        self.registry = registry or default_registry()
        self.progress = progress
        resolved = resolve(spec, strategy, self.registry)
        self.dataset: Dataset = resolved.dataset
        self.model_name, self.model_spec = resolved.model_name, resolved.model_spec
        self.device = resolve_device(spec.device)
        self.training, self.options = resolved.training, resolved.options
        self.pretraining = Pretraining(self.registry, self.training.pretrain, f"strategy {strategy.name!r}") \
            if self.training.pretrain else None
        self.pretrained: dict[str, Any] | None = None  # the record's entry of the stage, once it has run
        self.where = f"strategy {strategy.name!r} (plugin " + ", ".join(
            self.registry.strategies.get(part.name).plugin.label() for part in strategy.parts()) + ")"
        self.stopping = Stopping(self.registry, self.training.stop, self.where) if self.training.stop else None
        self.watching = Watching(self.registry, self.training.watch, self.where) if self.training.watch else None
        self.trace: Trace | None = None  # what each hook returned, for the leak check (sslzoo.testing)

    # -- the loop, top to bottom -----------------------------------------------------------
    def execute(self) -> Record:
        """Run the rounds until the strategy stops, with the judge in this process, and return the
        record. ``sslzoo bench``, the executors and :func:`sslzoo.run` run the learner in a process of
        its own instead (:func:`sslzoo._engine.learner.judged_run`); this is the engine's loop for
        tests, debugging and the labeling workflow."""
        started = time.perf_counter()
        self.setup()
        self.learn(started)
        judge = self.judge
        assert isinstance(judge, Judge)
        return judge.record

    def learn(self, started: float) -> None:
        """The rounds, after :meth:`setup`: train, report to the judge, acquire, until the strategy stops;
        the record without its figures goes to the judge last (``started``: when the run began, for its
        wall time)."""
        self.strategy.check(self.ctx)  # options that cannot work here fail before any training
        self.judge.started(self._run_info())
        self.pretrain()
        rnd, termination = 0, None
        while termination is None:
            fit = self.train_round(rnd)
            self.evaluate(rnd, self.training.epochs, fit.tally, fit.best_epoch)
            rnd += 1
            self.ctx.round = rnd
            termination = self.strategy.stop(self.ctx) or self.ask_criteria() or self.acquire(rnd)
        self.judge.finish(self._record(termination, time.perf_counter() - started))

    def ask_criteria(self) -> str | None:
        """After a round the strategy goes on from: the watched stopping criteria (``watch``), which end
        nothing, then the run's own (``stop``); ``"stop:NAME"`` when that one fires, else None. Each set of
        ids they watch is predicted once."""
        predicted: dict[int, torch.Tensor] = {}
        if self.watching is not None:
            self.watching.ask(self.ctx, predicted)
        return self.stopping.ask(self.ctx, predicted) if self.stopping is not None else None

    def setup(self, data: RunData | None = None, judge: Referee | None = None) -> None:
        """Seed, load the data onto the device with its judge here (or take ``data`` and ``judge``, as a
        learner process does with what its judge sent, and a labeling session with the labels it holds)
        and build the context: the run's state (the first part of :meth:`execute`; public so that a
        benchmark can time training alone)."""
        torch.manual_seed(self.spec.seed)
        if data is None or judge is None:
            data, judge = load_data(self.dataset, self.spec, self.device, self.registry.notify,
                                    self.training.validation, self.training.validation_counted)
        self.data, self.judge = data, judge
        self.inputs = (data.x, data.x_test)  # as loaded: a fitted prefix's outputs may replace them (_fit)
        self.features: nn.Module | None = None
        self._table: tuple[torch.Tensor, nn.Module, torch.Tensor, torch.Tensor] | None = None
        self._tallies = itertools.count()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.spec.seed)
        self.ctx = Context(model=nn.Identity(), x=self.data.x, ledger=self.data.ledger, generator=generator,
                           num_classes=self.data.num_classes, seed=self.spec.seed, epochs=self.training.epochs,
                           precision=self.training.precision)
        self.ctx._where = self.where
        self.members = Members(self.model_spec.build, tuple(self.inputs[0].shape[1:]), self.data.num_classes,
                               self.device, self.spec.seed, self.data, self.training, self.ctx, self.inputs[0])
        self.ctx.ensembles = self.members

    def pretrain(self) -> None:
        """The self-supervised stage (``pretrain``), before round 0, on the inputs of the pool and the
        starting labels: from then on every model the run builds (:attr:`members`' builder) starts from
        its backbone, frozen with ``pretrain_use=probe`` (:mod:`sslzoo._engine.pretraining`)."""
        if self.pretraining is None:
            return
        ledger, progress = self.data.ledger, self.progress
        ids = torch.cat([ledger.train(), ledger.pool()]).sort().values
        state, self.pretrained = self.pretraining.weights(
            self.model_spec.build, self.model_name, self.inputs[0], ids, self.data.num_classes, self.device,
            self.training.precision, lambda line: progress({NOTE: line}) if progress is not None else None)
        self.members.build = pretrained_build(self.model_spec.build, state, self.training.pretrain_use == "probe")

    def acquire(self, rnd: int) -> str | None:
        """Round ``rnd``'s select → label → weight on the pool, by each strategy that selects in this
        round (a composition's parts in turn, each from what is left of the pool); a reason to stop,
        or None."""
        ledger = self.data.ledger
        if ledger.pool().numel() == 0:
            return "pool_empty"
        selected = 0
        for part in composite.selectors(self.strategy, self.ctx):
            pool = ledger.pool()
            if pool.numel() == 0:
                break
            selected += self.label_round(rnd, part, pool)
        return None if selected else "nothing_selected"

    def label_round(self, rnd: int, part: Strategy, pool: torch.Tensor) -> int:
        """One strategy's select → label → weight on the ``pool`` in round ``rnd``, checked and written
        to the ledger; how many ids it labeled."""
        where = f"{self.where}, round {rnd}"
        chosen, expected = self.select_round(rnd, pool, part)
        if chosen.numel() == 0:
            return 0
        oracle = self.judge.handle(chosen, expected, where)
        with self.ctx.asking(oracle):  # label may ask the oracle for its own ids, up to query_count of them
            labels = part.label(self.ctx, chosen)
        self._traced("label", *((labels.ids, labels.targets, labels.confidence, labels.source)
                                if isinstance(labels, Labels) else (labels,)))
        check_labels(where, labels, chosen, oracle, expected)
        weights = part.weight(self.ctx, labels)
        self._traced("weight", weights)
        self.data.ledger.assign(labels, weights, rnd)
        return chosen.numel()

    def select_round(self, rnd: int, pool: torch.Tensor, part: Strategy | None = None) -> tuple[torch.Tensor, int]:
        """Round ``rnd``'s selection from the ``pool`` by ``part`` (default: the strategy's first selector,
        the one that queries), checked (unique global pool ids), with the number of oracle labels it
        must ask for (its ``query_count``)."""
        part = part or composite.selectors(self.strategy, self.ctx)[0]
        expected = part.query_count(self.ctx, pool.numel())
        chosen = part.select(self.ctx, pool)
        self._traced("select", chosen)
        check_selection(f"{self.where}, round {rnd}", chosen, pool)
        return chosen, expected

    def fresh_learner(self) -> Learner:
        """An untrained model on the device (its fitted feature layers fitted), with its optimizer."""
        ledger = self.data.ledger
        model = self.members.build(tuple(self.inputs[0].shape[1:]), self.data.num_classes).to(self.device)
        fitted_on = self.data.initial_ids if self.training.fit_features == "initial_labels" else ledger.train()
        self.members.fitted_on = fitted_on
        model = self._fit(model, fitted_on)
        self._check_fits(model)
        x = self.data.x
        if x.dim() == 4:  # images: channels_last convolutions (faster on CUDA and on the CPU here)
            model = model.to(memory_format=torch.channels_last)
        return Learner(model=model, optimizer=make_optimizer(model, self.training, int(ledger.train().numel())),
                       activation=inference.output_activation(model),
                       teachers=Teachers(model, x, self.training.precision))

    def _fit(self, model: nn.Module, fitted_on: torch.Tensor) -> nn.Module:
        """Fit ``model``'s feature layers on the inputs of ``fitted_on``. A fitted prefix
        (:func:`~sslzoo._ops.features.fitted_depth`) is computed once per fit for every input (not again
        when fitted on the same ids): the run's inputs become its outputs (:attr:`features` keeps it)
        and the rest of the model is returned."""
        depth = fitted_depth(model)
        table = self._table
        if not depth or table is None or not torch.equal(table[0], fitted_on):
            x, x_test = self.inputs
            fit_features(model, x[fitted_on])
            if not depth:
                return model
            prefix = nn.Sequential(*list(model.children())[:depth])
            self._table = table = (fitted_on, prefix, tabulate(prefix, x), tabulate(prefix, x_test))
        _, self.features, self.data.x, self.data.x_test = table
        self.ctx.x = self.data.x
        rest = nn.Sequential(*list(model.children())[depth:])
        rest.__dict__.update({k: v for k, v in vars(model).items() if not k.startswith("_")})  # its output_activation
        return rest

    def use(self, learner: Learner) -> None:
        """Train ``learner`` from now on (the context's model, activation and teachers are its)."""
        self.learner = learner
        self.ctx.model, self.ctx.activation, self.ctx.teachers = learner.model, learner.activation, learner.teachers

    def _check_fits(self, model: nn.Module) -> None:
        """The model must take the dataset's inputs and give one output per class: a one-sample forward
        pass, so that a model too deep for small images fails with a message, not in the first step."""
        x, classes = self.data.x[:1], self.data.num_classes
        where = f"model {self.model_name!r} on dataset {self.spec.dataset!r} (inputs of shape {tuple(x.shape[1:])})"
        try:
            with torch.no_grad(), inference.eval_mode(model):
                out = model(x)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[0]
            raise OptionError(f"{where} cannot compute: {reason}; choose another --model (sslzoo models)"
                              + (" or resize the images (-d size=N)" if x.dim() == 4 else "")) from None
        if tuple(out.shape) != (1, classes):
            raise OptionError(f"{where} gives outputs of shape {tuple(out.shape[1:])} per sample, the dataset has "
                              f"{classes} classes")

    def train_round(self, rnd: int) -> Fit:
        """Round ``rnd``'s training: a fresh learner when due (round 0, or ``retrain="scratch"``), then
        ``epochs`` epochs, each following the strategy's ``epoch_plan`` (see :func:`epoch_steps`).

        With ``eval_every`` N, a mid-round entry (``epoch`` < ``epochs``) goes to the judge every N
        epochs. With ``patience`` N, training stops after N epochs without a better accuracy (on the
        validation set when the run has one, else on the test set: :meth:`early_stopping`) and the best
        weights are restored (with ``patience_start`` the weights the round started from are the first
        candidate). Public so that a benchmark can time training alone.
        """
        ctx, training, data = self.ctx, self.training, self.data
        ctx.round = rnd
        if rnd == 0 or training.retrain == "scratch":
            self.use(self.fresh_learner())
        model, trainer = self.learner.model, composite.trainer(self.strategy)
        train_ids = data.ledger.train()
        sampler = PoolSampler(data.ledger.pool(), ctx.generator)
        semi = trainer.level == "step"
        tally = self.tally()
        stopper = self.early_stopping()
        ctx.unlabeled_batches = ctx.labeled_passes = 0
        for epoch in range(training.epochs):
            schedule_epoch(self.learner.optimizer, training, epoch)
            model.train()
            ctx.epoch, ctx.step_in_epoch = epoch, 0
            plan = trainer.epoch_plan(ctx)
            semi = semi or plan.unlabeled_batch_size > 0
            loss = self._epoch(rnd, epoch, trainer, plan, train_ids, sampler, tally)
            if self.progress is not None:
                self.progress({"round": rnd, "epoch": epoch + 1, "epochs": training.epochs, "loss": loss,
                               "labels": train_ids.numel()})
            if training.eval_every and (epoch + 1) % training.eval_every == 0 and epoch + 1 < training.epochs:
                self.evaluate(rnd, epoch + 1, tally if semi else None)
            if stopper is not None and stopper.stop(self.strategy.evaluated_model(ctx), epoch + 1):
                break
        if stopper is not None:
            stopper.restore(self.strategy.evaluated_model(ctx))
        return Fit(tally if semi else None, stopper.best_epoch if stopper is not None else None)

    def early_stopping(self) -> EarlyStopping | None:
        """A round's model selection: on the validation set when the run has one (from its labels, in
        this process; with ``patience`` 0 every epoch is a candidate and none stops the round), else
        with ``patience`` on the test set (the judge's accuracy), else none."""
        training, data = self.training, self.data
        if data.validation_ids is not None and data.validation_targets is not None:
            targets = data.validation_targets

            def accuracy(predicted: torch.Tensor) -> float:
                return float((predicted == targets).double().mean())

            return EarlyStopping(training.patience or training.epochs, data.x[data.validation_ids], accuracy,
                                 self.strategy.evaluated_model(self.ctx), training.precision, training.patience_start)
        if training.patience:  # the evaluated model is asked for only here: it may not exist before a step
            return EarlyStopping(training.patience, data.x_test, self.judge.accuracy,
                                 self.strategy.evaluated_model(self.ctx), training.precision, training.patience_start)
        return None

    def _epoch(self, rnd: int, epoch: int, trainer: Strategy, plan: EpochPlan, train_ids: torch.Tensor,
               sampler: PoolSampler, tally: Tally) -> float:
        """One epoch's optimizer steps over ``train_ids`` (and pool batches from ``sampler``), each
        ``trainer``'s loss; returns the mean loss (the epoch's one host sync). A labeled pass draws
        ``samples_per_epoch`` and cuts its ``last_batch`` as :mod:`sslzoo._ops.batches` says."""
        ctx, data, ledger, training = self.ctx, self.data, self.data.ledger, self.training
        n = train_ids.numel()
        length = pass_length(n, training.samples_per_epoch)
        bounds = pass_bounds(length, training.batch_size, training.last_batch)
        last_batch = len(bounds) - 1
        schedule = epoch_steps(length, training.batch_size, sampler.pool.numel(), plan, training.last_batch)
        steps = ctx.steps_per_epoch = len(schedule)
        bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        order = train_ids
        for s, (b, draws_unlabeled) in enumerate(schedule):
            ctx.step_in_epoch = s
            if b == 0:  # a labeled pass starts
                order = train_ids[pass_order(n, training.samples_per_epoch, ctx.generator, self.device)]
            ids = order[bounds[b][0]:bounds[b][1]] if b >= 0 else train_ids[:0]
            labeled = Batch(ids, data.x[ids], ledger.target[ids], ledger.weight[ids], ledger.source[ids])
            unlabeled = None
            if draws_unlabeled:
                ctx.unlabeled_batches += 1
                unlabeled = sampler.draw(plan.unlabeled_batch_size)
            loss = self._step(trainer, Step(labeled, unlabeled), tally)
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), ctx.step, bad_step)
            loss_sum += loss.detach()
            ctx.step += 1
            ctx.labeled_passes += b == last_batch
        self._check_finite(rnd, epoch, steps, bad_step)
        return float(loss_sum) / max(1, steps)

    def _step(self, trainer: Strategy, step: Step, tally: Tally) -> torch.Tensor:
        """One optimizer step: ``trainer``'s loss of the step (its own forward passes, under the run's
        autocast), what it pseudo-labeled counted in ``tally``, then backward, the optimizer and the
        teachers."""
        learner = self.learner
        with inference.autocast(self.device, self.training.precision), self.ctx.training():
            out = trainer.loss(self.ctx, step)
        loss, pseudo = (out.loss, out.pseudo) if isinstance(out, StepLoss) else (out, None)
        if self.trace is not None:
            seen = () if pseudo is None else (pseudo.ids, pseudo.targets, pseudo.confidence, pseudo.mask)
            self._traced("loss", loss.detach() if isinstance(loss, torch.Tensor) else loss, *seen)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise PluginError(f"{self.where}: loss must return a scalar tensor (or a StepLoss holding one), "
                              f"got {type(loss).__name__ if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}")
        if pseudo is not None:
            self._count(pseudo, step, tally)
        learner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learner.optimizer.step()
        learner.teachers.update()
        return loss

    def _count(self, pseudo: PseudoLabels, step: Step, tally: Tally) -> None:
        """Count a step's pseudo-labels and report them to the judge (who scores them for the record):
        they must be for ids of the step's unlabeled batch, one each (checked on the host only when the
        counts disagree, so that a correct step does not sync)."""
        ids, targets, confidence = pseudo.used()
        drawn = step.unlabeled if step.unlabeled is not None else ids[:0]
        if pseudo.ids is not drawn and (pseudo.ids.shape != drawn.shape or not torch.equal(pseudo.ids, drawn)):
            raise PluginError(f"{self.where}: a step's pseudo-labels must be for the ids of its unlabeled batch "
                              f"(step.unlabeled), in its order")
        tally.add(difficulty_buckets(confidence), ids, targets)
        tally.mark(ids)

    def _traced(self, hook: str, *returned: Any) -> None:
        """Tell :attr:`trace` (if any) what ``hook`` returned, as copies."""
        if self.trace is not None:
            self.trace(hook, self.ctx, tuple(value.detach().clone() if isinstance(value, torch.Tensor) else value
                                             for value in returned))

    def _check_finite(self, rnd: int, epoch: int, steps: int, bad_step: torch.Tensor) -> None:
        step = int(bad_step)
        if step >= 0:
            raise TrainingError(f"the loss of strategy {self.strategy.name!r} is not finite at round {rnd}, "
                                f"epoch {epoch + 1}, step {step} (step {step - self.ctx.step + steps} "
                                f"of that epoch); try a lower learning rate")

    # -- reporting -------------------------------------------------------------------------
    def tally(self) -> Tally:
        """A new tally of pseudo-labels, reporting them to the judge."""
        return Tally(self.device, self.data.ledger.source.numel(), self.judge.pseudo, next(self._tallies))

    def evaluate(self, rnd: int, epoch: int, step_tally: Tally | None, best_epoch: int | None = None) -> None:
        """Report the curve entry after ``epoch`` epochs of round ``rnd`` to the judge: the evaluated
        model's classes of the test set and the pseudo-labels so far (``best_epoch``: with ``patience``,
        the epoch whose weights were kept), which the judge scores.

        The pseudo-labels are the step phase's tally so far, or the ledger's pseudo-labels.
        """
        data, ledger = self.data, self.data.ledger
        predicted = inference.predicted_classes(self.strategy.evaluated_model(self.ctx), data.x_test,
                                                precision=self.training.precision)
        tally = step_tally
        if tally is None:
            tally = self.tally()
            pseudo = ledger.pseudo()
            tally.add(ledger.bucket[pseudo], pseudo, ledger.target[pseudo])
            tally.mark(pseudo)
        entry: dict[str, Any] = {"round": rnd, "epoch": epoch, "epochs": self.training.epochs}
        if best_epoch is not None:
            entry["best_epoch"] = best_epoch
        self.judge.entry(entry, predicted, tally.counts())

    def _run_info(self) -> dict[str, Any]:
        return {"strategy": self.strategy.name, "dataset": self.spec.dataset, "model": self.model_name,
                "seed": self.spec.seed, "options": dict(self.options), "device": str(self.device)}

    def _record(self, termination: str, wall: float) -> Record:
        """The record without its figures (``None`` where the judge puts them: see
        :meth:`sslzoo._engine.judge.Judge.finish`)."""
        plugins = [self.registry.strategies.get(part.name).plugin for part in self.strategy.parts()]
        record = {
            "strategy": self.strategy.name,
            "family": self.strategy.family,
            "options": self.options,
            "dataset": self.spec.dataset,
            "preset": self.spec.preset,
            "dataset_options": options_dict(self.dataset.options),
            "model": self.model_name,
            "seed": self.spec.seed,
            "split": {"how": self.spec.split, "exclude_classes": list(self.spec.exclude_classes)},
            "labels": int(self.data.initial_ids.numel()),
            "oracle_labels": None,
            "test_accuracy": None,
            "termination": termination,
            **({"stopped": self.stopping.stopped} if self.stopping is not None and self.stopping.stopped else {}),
            **({"watched": self.watching.entries()} if self.watching is not None else {}),
            "classes": self.data.classes,
            "confusion": None,
            "curve": None,
            "pseudo": None,
            "wall_seconds": round_float(wall, 3),
            "device": str(self.device),
            "machine": machine(self.device),
            "versions": versions(plugins),
        }
        if self.pretrained is not None:
            record["pretrain"] = self.pretrained  # the stage: method, options, key, reused, seconds
        if self.data.unlabeled:
            record["unlabeled_samples"] = self.data.unlabeled  # training samples without a label, held out
        if self.data.validation_ids is not None:  # model selection on it, not on the test set
            record["validation"] = {"size": int(self.data.validation_ids.numel()),
                                    "counted": self.training.validation_counted}
        boundary = decision_boundary(self.strategy.evaluated_model(self.ctx), self.data.x, self.data.ledger,
                                     self.data.num_classes, self.training.precision)
        if boundary is not None:
            record["boundary"] = boundary
        return record
