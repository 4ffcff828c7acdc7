"""A labeling session: active learning with people as the oracle, one step at a time, across days.

A session lives in a directory::

    session.json     what it runs: dataset (and its options), strategy (and options), model, seed,
                     device, the class names, the number of items, the control group and the
                     held-out items, if any
    labels.jsonl     the ledger: one line per imported batch, with who labeled which item as what
                     and when, and which labels are control labels (:mod:`sslzoo.labeling.label_log`)
    history.jsonl    one line per training (labels, test accuracy) and per round of queries (with
                     the control group's draws)
    model.pt         the weights of the last training and the ledger batches it learned from
    control.jsonl    one line per training the control group replayed, and control-model.pt its
                     last model (:mod:`sslzoo.labeling.replay`)
    stopping/        with a stopping criterion, the predictions it judges, one file per training
                     (:mod:`sslzoo.labeling.stop_log`)
    round-N/         round N's queries for a person: queries.csv (fill in its label column),
                     queries.png, label-studio-tasks.json and label-studio-config.xml, and the
                     model's auto-labels of the rest of the pool (autolabels.csv, hard ones first)

The steps are the engine's: :meth:`Session.next` trains on the labels held (when the model is
older than the ledger) with :meth:`Run.train_round <sslzoo._engine.run.Run.train_round>`, then asks the
strategy's ``select`` hook for the round's queries, exactly as a benchmark round does; with no
label yet (a cold start) the first round is the ``random`` strategy's choice. People answer; their
labels come back through :meth:`Session.import_labels` (a CSV or a Label Studio export), and the
next :meth:`Session.next` retrains on them.

Crash safety follows ``sslzoo bench --out``: every journal line is appended whole and fsync-ed,
every other file is replaced whole, and each step that writes holds the directory (a second
writer is refused at once). An import is one journal line, so a process killed at any moment
loses no imported label; a training killed midway leaves the previous model, and the next step
trains again. The session reads no hidden label: the labels it trains on are those imported and,
for a person's own data (``Dataset.labels_given``), those the dataset holds.

A session started with a control group (:mod:`sslzoo.labeling.control_queries`) also asks each round about
items drawn at random for it; the strategy's model never trains on their labels. A session whose
test split has no labels may set some of the data's labels aside to measure every training on
(:mod:`sslzoo.labeling.holdout`). A session started with a stopping criterion (``--stop``) says when it
fires, after each training (:mod:`sslzoo.labeling.stop_log`), and goes on asking: people decide.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import io
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from sslzoo._contract.dataset import Dataset
from sslzoo._contract.ledger import Ledger
from sslzoo._contract.oracle import oracle_labels
from sslzoo._contract.record import round_float
from sslzoo._contract.registry import Registry, default_registry, resolve_dataset
from sslzoo._contract.strategy import Strategy
from sslzoo._engine.catalog import create_strategy, option_names
from sslzoo._engine.judge import Judge
from sslzoo._engine.run import Progress, Run, RunData, RunSpec, check_arrays, resolve_device
from sslzoo._engine.stopping_rule import Stopping
from sslzoo._files import Journal, fsync_directory, hold, read_text, replace_file
from sslzoo._ops import inference
from sslzoo._ops.quality import BUCKETS, difficulty_buckets
from sslzoo._results.store import SESSION_FILE
from sslzoo._strategies.composite import Composite
from sslzoo._version import __version__
from sslzoo.errors import OptionError, SessionError, UnknownNameError
from sslzoo.labeling import label_studio, sheets, stop_log
from sslzoo.labeling.answers import Answer, decode, read_csv
from sslzoo.labeling.control_queries import CONTROL_FILE, ControlGroup, draw, draw_seed, holdings, mix
from sslzoo.labeling.holdout import evaluated_on, held_out_items
from sslzoo.labeling.label_log import GIVEN, Label, LabelBatch, LabelLedger, labeled
from sslzoo.labeling.label_studio import read_export

HISTORY_FILE = "history.jsonl"
MODEL_FILE = "model.pt"
COLD_START = "random"
"""The strategy of a round that has no model to ask (no label yet): the passive baseline."""
ROUND_OPTIONS = ("query_size", "budget")
"""Options a session sets itself: each round asks for ``-k`` items, and the session ends when people stop."""


def now() -> str:
    """The time, as the ledger and the history write it (UTC, ISO 8601, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def selection_seed(seed: int, round_: int) -> int:
    """The generator seed of round ``round_``'s selection: the same round picks the same items however
    the session got there (one process or several)."""
    return seed * 100_003 + round_


def round_size(queries: int, strategy: str, controls: int) -> str:
    """How many items a round asks about, in words: ``8 queries by margin`` (``and 4 control items``)."""
    return f"{queries} queries by {strategy}" + (f" and {controls} control items" if controls else "")


def check_strategy(name: str, options: dict[str, Any], registry: Registry) -> Strategy:
    """The strategy a session can run (one that asks a labeler about every item it selects), built
    with ``options``; :class:`~sslzoo.errors.SessionError` or ``OptionError`` naming what does not fit."""
    for key in options:
        if key.rpartition(".")[2] in ROUND_OPTIONS:
            raise OptionError(f"option {key} is not set in a labeling session: each `sslzoo label next -k K` asks "
                              f"for K items, and the session ends when you stop labeling")
    if not set(ROUND_OPTIONS) <= option_names(name, registry):
        raise SessionError(f"strategy {name!r} does not ask a labeler (it has no query_size option); a labeling "
                           f"session runs an active-learning strategy such as entropy, margin or bald, alone or "
                           f"with per-step pseudo-labeling (entropy+pseudo_label)")
    strategy = create_strategy(name, registry, **options, query_size=1, budget=1)
    if isinstance(strategy, Composite) and strategy.pseudo.level == "round":
        raise SessionError(f"strategy {name!r} pseudo-labels whole rounds, which a session leaves to people: each "
                           f"round's autolabels.csv holds the model's guesses for review; run "
                           f"{strategy.active.name!r} (or {strategy.active.name}+pseudo_label)")
    return strategy


@dataclass
class Round:
    """A round of queries: its number, directory and files, the items in the strategy's order (each
    ``{"id", "item", "guess", "confidence", "difficulty", "control"}``; with a control group its control
    items are mixed in at random places, ``control`` true), the strategy that chose them, the training
    whose model guessed (None: a cold start), whether it was asked before (``reused``), the control
    group's draws (None: no control group, or a cold start) and the verdict of the session's stopping
    criterion (:meth:`Session.stopped`; None: it has not fired, or the session has none)."""

    number: int
    directory: Path
    items: list[dict[str, Any]]
    files: list[Path]
    strategy: str
    training: int | None
    reused: bool = False
    control: list[int] | None = None
    stop: dict[str, Any] | None = None


@dataclass
class Imported:
    """An import: the batch appended to the ledger and how many of the file's labels it already held."""

    batch: LabelBatch
    already: int


@dataclass
class _Data:
    """The session's dataset, loaded: raw training inputs (for sheets and the model) and the test split."""

    dataset: Dataset
    x: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    names: tuple[str, ...]  # where each training item came from (a file), when the dataset says


@dataclass
class _State:
    """What one step reads: the ledger's batches, the history and the last model's facts."""

    batches: list[LabelBatch]
    history: list[dict[str, Any]]
    model: dict[str, Any] | None
    labels: dict[int, tuple[Label, int]] = field(init=False)
    control: set[int] = field(init=False)  # the control labels' items: the control group's alone

    def __post_init__(self) -> None:
        self.labels = labeled(self.batches)
        self.control = {i for batch in self.batches for i in batch.control}

    def own(self) -> dict[int, tuple[Label, int]]:
        """The labels the strategy's model trains on: every label but the control labels."""
        return {i: label for i, label in self.labels.items() if i not in self.control}

    def model_current(self) -> bool:
        """Whether the last model learned from every batch of the ledger."""
        return self.model is not None and self.model["batches"] == len(self.batches)

    def queries(self) -> list[dict[str, Any]]:
        return [e for e in self.history if e.get("event") == "query"]


class Session:
    """The labeling session in ``directory`` (see the module's docstring); :meth:`start` makes one."""

    def __init__(self, directory: str | os.PathLike, *, registry: Registry | None = None,
                 progress: Progress | None = None, notify: Callable[[str], None] | None = None) -> None:
        self.directory = Path(directory)
        path = self.directory / SESSION_FILE
        if not path.is_file():
            raise SessionError(f"{self.directory}: not a labeling session (no {SESSION_FILE}); start one with "
                               f"`sslzoo label start {self.directory} --dataset NAME --strategy NAME`")
        try:
            self.spec: dict[str, Any] = json.loads(read_text(path, SessionError))
        except json.JSONDecodeError as exc:
            raise SessionError(f"{path}: not valid JSON ({exc.msg}); the session's description is damaged") from None
        self.registry = registry or default_registry()
        self.progress, self.notify = progress, notify or (lambda line: None)
        self.ledger = LabelLedger(self.directory)
        self.history = Journal(self.directory / HISTORY_FILE, SessionError)
        self.classes: list[str] = list(self.spec["classes"])
        self.control = ControlGroup.from_json(self.spec.get("control"))
        self.holdout: list[int] = list((self.spec.get("holdout") or {}).get("ids", []))
        self.stop_option: str = self.spec["resolved_options"].get("stop") or ""  # its stopping criterion, if any
        self._held = 0

    # -- starting and holding --------------------------------------------------------------------
    @classmethod
    def start(cls, directory: str | os.PathLike, dataset: str, strategy: str, *,
              options: dict[str, Any] | None = None, dataset_options: dict[str, Any] | None = None,
              model: str | None = None, seed: int = 0, device: str = "auto", control: float | str | None = None,
              holdout: int | str | None = None, registry: Registry | None = None) -> Session:
        """A new session in ``directory`` (absent or empty) on ``dataset`` (a name, or a path as
        ``sslzoo bench`` takes it) with ``strategy``: everything is checked and the data read first,
        then the session appears whole (written beside ``directory`` and renamed into place), holding
        the labels the dataset gives, if any; a ``directory`` that is a symbolic link (to an empty
        directory, or to none yet) holds the session where it points, the link stays. Dataset options
        naming files are kept as absolute paths.

        ``control``: a control group drawing that fraction of each round's queries at random
        (:mod:`sslzoo.labeling.control_queries`); it needs a labeled test split or ``holdout``, that many of
        the dataset's labels set aside to measure every training on (:mod:`sslzoo.labeling.holdout`)."""
        target = Path(os.path.realpath(directory)) if os.path.islink(directory) else Path(directory)
        if (target / SESSION_FILE).exists():
            raise SessionError(f"{target}: already a labeling session; continue it with `sslzoo label next {target}`")
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise SessionError(f"{target}: exists and is not an empty directory; start the session in a new one")
        registry = registry or default_registry()
        options = dict(options or {})
        built = check_strategy(strategy, options, registry)
        if built.options.stop:  # an unknown criterion or a bad option of it fails here, as in sslzoo bench
            Stopping(registry, built.options.stop, f"strategy {strategy!r}")
        group = None if control is None else ControlGroup.of(control, strategy, built, registry, ROUND_OPTIONS)
        dataset, dataset_options = resolve_dataset(dataset, dataset_options, registry)
        dataset_options = {k: _absolute(v) for k, v in dataset_options.items()}
        data_set = registry.datasets.get(dataset).obj(**dataset_options)
        model_name = model or data_set.default_model
        registry.models.get(model_name)
        resolve_device(device)
        arrays = data_set.load(seed)  # a file that cannot be read fails here, before anything is written
        classes = arrays.class_names(data_set.num_classes)
        arrays = check_arrays(arrays, dataset, len(classes))
        test_labeled = arrays.y_test.numel() > 0 and bool((arrays.y_test >= 0).all())
        ids = torch.nonzero(arrays.y_train >= 0).flatten().tolist() if data_set.labels_given else []
        held = [] if holdout is None else held_out_items(holdout, ids, seed, dataset, test_labeled)
        if group is not None and not test_labeled and not held:
            raise OptionError(f"--control: the test split of dataset {dataset!r} has no labels to measure the strategy "
                              f"and its control group on; set some of your labels aside with --holdout N")
        started = now()
        spec = {"format": 1, "sslzoo": __version__, "created": started, "dataset": dataset,
                "dataset_options": dataset_options, "strategy": strategy, "options": options,
                "resolved_options": {k: v for k, v in built.resolved_options().items() if k not in ROUND_OPTIONS},
                "model": model_name, "seed": seed, "device": device, "classes": classes,
                "items": int(arrays.y_train.numel()), "control": group.to_json() if group else None,
                "holdout": {"ids": held, "labels": [classes[int(arrays.y_train[i])] for i in held]} if held else None}
        aside = set(held)
        given = [Label(i, classes[int(arrays.y_train[i])], GIVEN, started) for i in ids if i not in aside]
        del arrays  # a benchmark's training labels are hidden: nothing of them is kept
        staging = target.with_name(f".{target.name}.starting-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
            replace_file(staging / SESSION_FILE, (json.dumps(spec, indent=2) + "\n").encode(), SessionError)
            if given:
                LabelLedger(staging).append(LabelBatch(0, f"dataset {dataset}", started, None, 0, tuple(given)))
            Journal(staging / HISTORY_FILE, SessionError).append({"event": "start", "at": started,
                                                                  "labels": len(given)})
            os.rename(staging, target)  # replaces an empty directory; a concurrent start makes it non-empty
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise SessionError(f"{target}: cannot start a session here: {exc.strerror or exc}") from None
        fsync_directory(target.resolve().parent)
        return cls(target, registry=registry)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the session for the steps in the block: another process that tries to write to it is
        refused until the block ends (or this process does). Blocks nest."""
        if self._held:
            yield
            return

        def busy() -> SessionError:
            return SessionError(f"{self.directory}: another sslzoo process is writing to this session; wait until "
                                f"it ends, then try again")

        with hold(self.directory, busy, SessionError):
            self._held += 1
            try:
                yield
            finally:
                self._held -= 1

    # -- reading ---------------------------------------------------------------------------------
    def state(self) -> _State:
        model = None
        path = self.directory / MODEL_FILE
        if path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            model = {k: v for k, v in saved.items() if k != "state_dict"}
        return _State(self.ledger.batches(), self.history.read().entries, model)

    def stopped(self) -> dict[str, Any] | None:
        """Whether the session's stopping criterion (the ``stop`` option) has fired, replayed from the
        start over the predictions kept at each training (:func:`sslzoo.labeling.stop_log.verdict`):
        ``{"criterion", "options", "training", "labels", "why"}`` of the first training whose model
        fired it, or None (not fired, or no criterion)."""
        return self._stopped(self.state())

    def _stopped(self, state: _State) -> dict[str, Any] | None:
        if not self.stop_option or state.model is None:
            return None
        return stop_log.verdict(self.directory, self.stop_option, self.registry, state.model["training"])

    def _data(self) -> _Data:
        """The dataset, loaded; with held-out items, they are its test split."""
        data_set = self.registry.datasets.get(self.spec["dataset"]).obj(**self.spec["dataset_options"])
        arrays = data_set.load(self.spec["seed"])
        if arrays.x_train.shape[0] != self.spec["items"]:
            raise SessionError(f"dataset {self.spec['dataset']!r} has {arrays.x_train.shape[0]} training items now; "
                               f"this session started with {self.spec['items']}, and its labels name items by "
                               f"position: start a new session for the changed data")
        x_test, y_test = arrays.x_test, arrays.y_test.long()
        if self.holdout:
            x_test = arrays.x_train[torch.tensor(self.holdout)]
            y_test = torch.tensor([self.classes.index(c) for c in self.spec["holdout"]["labels"]])
        return _Data(data_set, arrays.x_train, x_test, y_test, arrays.train_names)

    def _run(self, strategy: Strategy, name: str, data: _Data, batches: list[LabelBatch],
             labels: dict[int, tuple[Label, int]], out: set[int], options: dict[str, Any]) -> Run:
        """The engine's run of ``strategy`` (called ``name``, given ``options``) on the session's data,
        holding ``labels`` (item → label and batch, of ``batches``); the items of ``out`` are neither in its
        pool nor trained on, nor are the held-out items."""
        spec = RunSpec(strategy=name, dataset=self.spec["dataset"], seed=self.spec["seed"], model=self.spec["model"],
                       device=self.spec["device"], options=options, dataset_options=self.spec["dataset_options"])
        run = Run(spec, strategy, self.registry, self.progress)
        n, device = data.x.shape[0], run.device
        known = torch.full((n,), -1, dtype=torch.long)
        for item_id, (label, _) in labels.items():
            known[item_id] = self.classes.index(label.label)
        given = [x.id for batch in batches if batch.number == 0 and batch.sha256 is None for x in batch.labels
                 if x.id in labels]
        normalize = data.dataset.normalize  # the loaded dataset: it may standardize with its own statistics
        run.setup(RunData(x=normalize(data.x.to(device)), x_test=normalize(data.x_test.to(device)),
                          ledger=Ledger(n, device),
                          initial_ids=torch.tensor(given, dtype=torch.long, device=device), classes=self.classes),
                  Judge(known.to(device), data.y_test.to(device), len(self.classes)))
        run.data.ledger.hold_out(torch.tensor(sorted(out | set(self.holdout)), dtype=torch.long, device=device))
        for batch in batches:
            ids = torch.tensor([x.id for x in batch.labels if x.id in labels], dtype=torch.long, device=device)
            assigned = oracle_labels(ids, known.to(device)[ids])
            run.data.ledger.assign(assigned, strategy.weight(run.ctx, assigned), batch.round)
        run.pretrain()  # the training option pretrain: its stage, from the cache after the first training
        return run

    def _strategy_run(self, k: int, state: _State, data: _Data) -> tuple[Strategy, Run]:
        """The session's strategy asking for ``k`` items and its run on its own labels (the control labels'
        items out of it)."""
        own = state.own()
        strategy = create_strategy(self.spec["strategy"], self.registry, **self.spec["options"], query_size=k,
                                   budget=len(own) + k)
        return strategy, self._run(strategy, self.spec["strategy"], data, state.batches, own, state.control,
                                   self.spec["options"])

    # -- training --------------------------------------------------------------------------------
    def train(self, force: bool = False) -> dict[str, Any] | None:
        """Train on every label held, unless the model already learned from all of them (``force``: train
        anyway); the history entry of the training, or None when there was nothing new."""
        with self.writing():
            state = self.state()
            if not state.labels:
                raise SessionError(f"{self.directory}: no labels yet: ask for the first queries "
                                   f"(`sslzoo label next {self.directory}`), label them and import them")
            if state.model_current() and not force:
                return None
            return self._train(state, self._data())

    def _train(self, state: _State, data: _Data) -> dict[str, Any]:
        strategy, run = self._strategy_run(1, state, data)
        own = state.own()
        number = (state.model["training"] if state.model else 0) + 1
        seen = state.model["labels"] if state.model else 0
        self.notify(f"training {number} on {len(own)} labels ({len(own) - seen} new), {run.training.epochs} epochs")
        numbers, weights = self._fit(run, strategy, own, number, self.directory / MODEL_FILE if state.model else None)
        if run.stopping is not None:  # before the model: a training killed in between is left out, then redone
            stop_log.save(self.directory, run, run.stopping, number, len(state.batches), len(own))
        entry = {"event": "train", "training": number, "at": now(), "batches": len(state.batches), **numbers}
        buffer = io.BytesIO()
        torch.save({"state_dict": weights, "training": number, "batches": len(state.batches), "labels": len(own)},
                   buffer)
        replace_file(self.directory / MODEL_FILE, buffer.getvalue(), SessionError)
        self.history.append(entry)
        return entry

    def _fit(self, run: Run, strategy: Strategy, labels: dict[int, tuple[Label, int]], number: int,
             previous: Path | None) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Training ``number`` of ``run`` on ``labels`` (from the weights in ``previous`` when the training
        options say ``retrain=warm`` and there are some): what it learned from and how it measures, and
        its weights."""
        strategy.check(run.ctx)
        rnd = 0
        if run.training.retrain == "warm" and previous is not None:
            self._load_model(run, previous)
            rnd = number - 1
        started = time.perf_counter()
        run.train_round(rnd)
        counts = Counter(label.label for label, _ in labels.values())
        numbers = {"labels": len(labels), "labels_per_class": {c: counts.get(c, 0) for c in self.classes},
                   **self._evaluate(run), "epochs": run.training.epochs,
                   "wall_seconds": round_float(time.perf_counter() - started, 3)}
        return numbers, {k: v.detach().cpu() for k, v in run.learner.model.state_dict().items()}

    def _load_model(self, run: Run, path: Path) -> None:
        learner = run.fresh_learner()
        saved = torch.load(path, map_location=run.device, weights_only=True)
        learner.model.load_state_dict(saved["state_dict"])
        run.use(learner)

    @staticmethod
    def _evaluate(run: Run) -> dict[str, Any]:
        """Test accuracy and the confusion counts (true class by predicted class, as a benchmark's records
        hold them), when the test split is there and labeled."""
        judge = run.judge
        assert isinstance(judge, Judge)  # a session's judge is in its process: its truth is the person labeling
        if not judge.scores_the_test_set():
            return {"test_accuracy": None}
        predicted = inference.predicted_classes(run.learner.model, run.data.x_test, precision=run.training.precision)
        matrix = judge.confusion(predicted)
        return {"test_accuracy": round_float(float(matrix.diagonal().sum()) / predicted.numel()),
                "confusion": matrix.tolist()}

    # -- asking ----------------------------------------------------------------------------------
    def next(self, k: int) -> Round:
        """Round ``k`` queries: train first when the model is older than the ledger, then the strategy's
        selection from the pool, with the model's guesses, and the round's files. Asking again
        before any new label gives the same round back (``reused``)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise OptionError(f"-k must be a whole number of at least 1, got {k!r}")
        with self.writing():
            state = self.state()
            data = self._data()
            if state.labels and not state.model_current():
                self._train(state, data)
                state = self.state()
            training = state.model["training"] if state.labels and state.model else None
            asked = state.queries()
            last = asked[-1] if asked else None
            stop = self._stopped(state)
            if last and (last["k"], last["training"], last["batches"]) == (k, training, len(state.batches)):
                return Round(last["round"], self.directory / f"round-{last['round']}", last["items"],
                             [self.directory / f for f in last["files"]], last["strategy"], training, reused=True,
                             control=last.get("control"), stop=stop)
            return self._ask((last["round"] if last else 0) + 1, k, training, state, data, stop)

    def _ask(self, number: int, k: int, training: int | None, state: _State, data: _Data,
             stop: dict[str, Any] | None) -> Round:
        cold = training is None
        name = COLD_START if cold else self.spec["strategy"]
        if cold:
            strategy = create_strategy(COLD_START, self.registry, query_size=k, budget=len(state.labels) + k)
            run = self._run(strategy, name, data, state.batches, state.own(), state.control, self.spec["options"])
        else:
            strategy, run = self._strategy_run(k, state, data)
            self._load_model(run, self.directory / MODEL_FILE)
        ctx = run.ctx
        ctx.round = number
        ctx.generator.manual_seed(selection_seed(self.spec["seed"], number))
        pool = run.data.ledger.pool()
        if pool.numel() == 0:
            raise SessionError(f"{self.directory}: every item has a label; there is nothing left to ask about")
        chosen, expected = run.select_round(number, pool)
        if chosen.numel() != expected:
            raise SessionError(f"strategy {name!r} selected {chosen.numel()} items in round {number} for {expected} "
                               f"queries; a labeling session asks people about every item its strategy selects")
        guesses = self._guesses(run, pool, cold, data.names)
        queries = chosen.tolist()
        chosen_ids = set(queries)
        drawn = None if cold or self.control is None else self._draw(self.control, number, k, state)
        controls = [i for i in drawn or () if i not in state.labels and i not in chosen_ids]
        items = mix([{**guesses[i], "control": False} for i in queries],
                    [{**guesses[i], "control": True} for i in controls], draw_seed(self.spec["seed"], number) + 1)
        order = [item["id"] for item in items]
        asked = chosen_ids | set(controls)
        rest = [item for i, item in guesses.items() if i not in asked]
        directory = self.directory / f"round-{number}"
        files = self._write_round(directory, number, name, training, items, rest, data.x[torch.tensor(order)],
                                  len(controls))
        entry = {"event": "query", "round": number, "at": now(), "k": k, "strategy": name, "training": training,
                 "batches": len(state.batches), "items": items, **({} if drawn is None else {"control": drawn}),
                 "files": [str(f.relative_to(self.directory)) for f in files]}
        self.history.append(entry)
        return Round(number, directory, items, files, name, training, control=drawn, stop=stop)

    def _draw(self, group: ControlGroup, number: int, k: int, state: _State) -> list[int]:
        """Round ``number``'s control draws, sorted: ``group``'s share of ``k`` queries, drawn at random
        from its pool (every item but the held-out ones, its start and its earlier draws)."""
        taken = holdings(state.history, state.batches).taken() | set(self.holdout)
        pool = [i for i in range(self.spec["items"]) if i not in taken]
        return sorted(draw(pool, group.size(k), draw_seed(self.spec["seed"], number)))

    def _guesses(self, run: Run, pool: torch.Tensor, cold: bool, names: tuple[str, ...]) -> dict[int, dict[str, Any]]:
        """Every pool item (its ``item``: the file it came from, when the dataset names it) with the model's
        guess, confidence and difficulty (all None on a cold start). Difficulty is the tercile of the
        confidence among the whole pool (:func:`difficulty_buckets`)."""
        ids = pool.tolist()
        items = {i: {"id": i, "item": names[i] if names else None} for i in ids}
        if cold:
            return {i: {**item, "guess": None, "confidence": None, "difficulty": None} for i, item in items.items()}
        probs = inference.probabilities(run.learner.model, run.data.x, pool, precision=run.training.precision)
        confidence, guess = probs.max(dim=1)
        buckets = difficulty_buckets(confidence)
        return {i: {**items[i], "guess": self.classes[g], "confidence": round_float(c, 4), "difficulty": BUCKETS[b]}
                for i, g, c, b in zip(ids, guess.tolist(), confidence.tolist(), buckets.tolist())}

    def _write_round(self, directory: Path, number: int, strategy: str, training: int | None,
                     items: list[dict[str, Any]], rest: list[dict[str, Any]], images: torch.Tensor,
                     controls: int) -> list[Path]:
        """The round's files, each replaced whole (``controls``: how many of the items are control items)."""
        directory.mkdir(exist_ok=True)
        pictures = sheets.is_image(images)
        model_version = f"sslzoo {strategy}, training {training}"
        media = [{"image": label_studio.png_data_uri(sheets.png(image))} if pictures else
                 {"features": sheets.features_text(image)} for image in images]
        media = [{**m, "item": item["item"]} if item["item"] else m for m, item in zip(media, items)]
        out: dict[str, bytes] = {
            "queries.csv": sheets.queries_csv(items),
            "label-studio-tasks.json": (json.dumps(label_studio.tasks(
                [{**item, "data": m} for item, m in zip(items, media)], model_version), indent=1) + "\n").encode(),
            "label-studio-config.xml": label_studio.labeling_config(self.classes, pictures).encode()}
        if pictures:
            title = f"round {number}: {round_size(len(items) - controls, strategy, controls)}" + (
                f" (guesses of training {training})" if training is not None else " (no model yet)")
            out["queries.png"] = sheets.contact_sheet(images, items, title)
        if training is not None:
            out["autolabels.csv"] = sheets.autolabels_csv(rest)
        for name, content in out.items():
            replace_file(directory / name, content, SessionError)
        return [directory / name for name in out]

    # -- importing -------------------------------------------------------------------------------
    def import_labels(self, path: str | os.PathLike, labeler: str | None = None) -> Imported:
        """Append the labels in ``path`` (a CSV with ``id`` and ``label`` columns, or a Label Studio JSON
        export) to the ledger as one batch, by ``labeler`` where the file does not say who (default:
        the user's login name). Labels the ledger already holds are left out; anything that does not
        fit (an unknown item or class, a label that contradicts the ledger, a file imported before)
        is an error that changes nothing."""
        source = Path(path)
        try:
            content = source.read_bytes()
        except OSError as exc:
            raise SessionError(f"{source}: cannot read: {exc.strerror or exc}") from None
        digest = hashlib.sha256(content).hexdigest()
        with self.writing():
            state = self.state()
            for batch in state.batches:
                if batch.sha256 == digest:
                    raise SessionError(f"{source}: already imported on {batch.imported} as batch {batch.number} "
                                       f"(from {batch.source}); nothing changed")
            answers = read_answers(source, content)
            default_by, at = labeler or _login(), now()
            new: dict[int, Label] = {}
            already = 0
            held_out = set(self.holdout)
            for answer in answers:
                if not 0 <= answer.id < self.spec["items"]:
                    raise SessionError(f"{answer.where}: id {answer.id} is not an item of this session "
                                       f"(its ids are 0 to {self.spec['items'] - 1}); nothing changed")
                if answer.id in held_out:
                    raise SessionError(f"{answer.where}: item {answer.id} is held out to measure the trainings on, "
                                       f"with the label your data gives it; nothing changed")
                if answer.label not in self.classes:
                    hint = str(UnknownNameError("class", answer.label, self.classes)).partition("; ")[2]
                    raise SessionError(f"{answer.where}: unknown class {answer.label!r}; {hint}; nothing changed")
                held = state.labels.get(answer.id)
                if held is not None and held[0].label != answer.label:
                    raise SessionError(f"{answer.where}: item {answer.id} is labeled {held[0].label!r} in batch "
                                       f"{held[1]} (by {held[0].by}); this file says {answer.label!r}; nothing changed")
                twice = new.get(answer.id)
                if twice is not None and twice.label != answer.label:
                    raise SessionError(f"{answer.where}: item {answer.id} is labeled both {twice.label!r} and "
                                       f"{answer.label!r} in this file; nothing changed")
                if held is not None:
                    already += 1
                elif twice is None:
                    new[answer.id] = Label(answer.id, answer.label, answer.by or default_by, answer.at or at)
            if not new:
                raise SessionError(f"{source}: no new labels ({len(answers)} labeled rows, {already} of them already "
                                   f"in the ledger); nothing changed")
            asked = state.queries()
            control_items = holdings(state.history, state.batches).control_items
            batch = LabelBatch(len(state.batches), str(source), at, digest, asked[-1]["round"] if asked else 0,
                               tuple(new.values()), tuple(i for i in new if i in control_items))
            self.ledger.append(batch)
            return Imported(batch, already)

    # -- describing ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Where the session stands: its set-up, what its trainings are measured on, the labels held per
        class, the batches, trainings and rounds, the items of the last round nobody has labeled yet, the
        verdict of its stopping criterion (:meth:`stopped`) and its control group (None: it has none):
        the share of each round it draws, its items drawn and asked (for it alone), the control labels,
        the labels its learner holds and the trainings it replayed."""
        state = self.state()
        counts = Counter(label.label for label, _ in state.labels.values())
        asked = state.queries()
        pending = [item["id"] for item in asked[-1]["items"] if item["id"] not in state.labels] if asked else []
        control = None
        if self.control is not None:
            held = holdings(state.history, state.batches)
            control = {"strategy": self.control.strategy, "fraction": self.control.fraction, "drawn": len(held.drawn),
                       "asked": len(held.control_items), "labels": len(state.control),
                       "learner_labels": len(held.control_labels(state.labels)),
                       "replayed": len(Journal(self.directory / CONTROL_FILE, SessionError).read().entries)}
        return {"directory": str(self.directory), "dataset": self.spec["dataset"], "strategy": self.spec["strategy"],
                "model": self.spec["model"], "items": self.spec["items"], "classes": self.classes,
                "evaluated_on": evaluated_on(self.spec.get("holdout")),
                "labels": len(state.labels), "labels_per_class": {c: counts.get(c, 0) for c in self.classes},
                "batches": [{"batch": b.number, "source": b.source, "imported": b.imported, "labels": len(b.labels),
                             "control": len(b.control), "by": sorted({x.by for x in b.labels})}
                            for b in state.batches],
                "trainings": [e for e in state.history if e.get("event") == "train"],
                "rounds": [{**{k: e[k] for k in ("round", "at", "k", "strategy", "training")},
                            "queries": sum(1 for item in e["items"] if not item.get("control")),
                            "controls": sum(1 for item in e["items"] if item.get("control"))} for e in asked],
                "pending": pending, "model_current": state.model_current(), "stop": self._stopped(state),
                "control": control}


def _absolute(value: Any) -> Any:
    """A dataset option that names an existing file or folder, as an absolute path (a session goes on
    from any working directory); any other value as it is."""
    return os.path.abspath(value) if isinstance(value, str) and value and os.path.exists(value) else value


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def read_answers(path: Path, data: bytes) -> list[Answer]:
    """The labels in ``data``, the content of ``path``: a Label Studio JSON export (a ``.json`` file,
    or text that starts with ``[``), else a CSV."""
    text = decode(data, path)
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        return read_export(text, path)
    return read_csv(text, path)
