"""The learner's own process: a run whose strategy never shares a process with a hidden label.

A run has two sides (:mod:`sslzoo._engine.judge`). The judge loads the dataset, holds its truth and keeps
the record; the learner trains the model and runs the strategy. :func:`judged_run` runs them in two
processes::

    judge (this process)                          learner (a fresh process)
    load the data; the truth stays here
    start the learner with the inputs, the  ───▶  rebuild the registry and the strategy
    starting labels and the held-out ids          the engine's loop (Run.learn)
    answer the oracle for an open handle    ◀──▶  label(): ctx.oracle(ids)
    score what the learner reports          ◀───  pseudo-labels, the test set's predicted classes,
                                                  progress, the record without its figures
    complete the record; observers' hooks

The learner's process receives the normalized inputs (in shared memory), the starting labels, the
ids held out of the run, the labels of its validation set if it has one, and the oracle's answers
for the ids its ``label`` asks about; nothing else of the truth, and nothing the judge computes
from it except, for ``patience`` without a validation set, one test accuracy per epoch it trains.
It is a fresh process: forked from a server process that imported sslzoo and torch and never held
any data (``forkserver``; ``spawn`` where the platform has no fork server), so nothing of an
earlier run or of the judge's memory is in it.

This is how every run of ``sslzoo bench``, of its worker processes and Ray tasks, and of
:func:`sslzoo.run` executes. ``in_process`` runs both sides in this process (:meth:`Run.execute`),
for debugging; its record says so (``"judge": "in-process"``).

The learner does not import the caller's ``__main__`` script (unless a plugin is defined there), so
a script that calls :func:`sslzoo.run` needs no ``if __name__ == "__main__":`` guard, where
``--workers`` and Ray need one.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np
import torch
import torch.multiprocessing  # noqa: F401  (hands the learner its inputs in shared memory)

from sslzoo._contract.labels import HELD_OUT
from sslzoo._contract.ledger import Ledger
from sslzoo._contract.oracle import OracleHandle, oracle_labels
from sslzoo._contract.plugins import DEFAULT_PLUGINS
from sslzoo._contract.record import round_float
from sslzoo._contract.registry import Registry
from sslzoo._engine import threads
from sslzoo._engine.catalog import create_strategy
from sslzoo._engine.judge import Judge
from sslzoo._engine.registry_recipe import RegistryRecipe
from sslzoo._engine.run import Progress, Record, Run, RunData, RunSpec, load_data
from sslzoo.errors import LearnerDied, OracleError, RemoteTraceback, WorkerError, portable

#: Pseudo-labels a learner holds before it sends them to its judge (they also go before any other report).
FLUSH_AT = 1 << 20

#: Bytes a learner allocates and frees as it starts: just under glibc's largest dynamic mmap threshold
#: (32 MiB), which freeing it raises the threshold to (:func:`warm_allocator`).
WARM_BLOCK = 32 * 2**20 - 2**16

#: Seconds a learner gets to exit after it is terminated, before it is killed.
STOP_GRACE = 5.0

#: Seconds a learner that sent its last message gets to exit by itself, before it is terminated.
EXIT_GRACE = 0.5

IN_PROCESS = "in-process"
"""A record's ``judge`` when the learner shared the judge's process."""


@dataclass(frozen=True)
class Start:
    """What the judge hands a learner: the run, how to build its registry, the judge's environment
    variables (the fork server's are those of when it started), its torch threads and random state,
    and the learner's data: the normalized inputs, the starting labels (ids and targets), the ids
    held out of the run, the class names, how many training samples have no label and the
    validation set's ids and labels (None: no validation set); and a probe for tests."""

    spec: RunSpec
    recipe: RegistryRecipe
    environ: dict[str, str]
    threads: int
    rng_state: torch.Tensor
    x: torch.Tensor
    x_test: torch.Tensor
    initial_ids: torch.Tensor
    initial_targets: torch.Tensor
    held_out: torch.Tensor
    classes: list[str]
    unlabeled: int
    validation_ids: torch.Tensor | None = None
    validation_targets: torch.Tensor | None = None
    probe: Probe | None = None


class Probe(Protocol):
    """What a test looks at inside a learner (:func:`probed_run`; the leak check of
    :mod:`sslzoo.testing`): ``before`` the rounds, with the run set up, and ``after`` them, whose
    value (tensors and plain data) comes back to the judge's process."""

    def before(self, run: Run) -> None: ...

    def after(self, run: Run) -> Any: ...


def context() -> Any:
    """How learners start: forked from a server that imported this module (and with it sslzoo and
    torch, what building an optimizer imports and the built-in plugins), else spawned."""
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return multiprocessing.get_context("spawn")
    forkserver = multiprocessing.get_context("forkserver")
    # the first optimizer imports torch._dynamo; each learner builds its registry from the built-in plugins
    forkserver.set_forkserver_preload([__name__, "torch._dynamo", *DEFAULT_PLUGINS])
    return forkserver


def prepare() -> None:
    """Start the fork server now (its imports take seconds), so that it is ready by the first run. It
    starts with Ctrl-C ignored, as it ignores it itself once its imports are done: a Ctrl-C meant for
    the command must not kill it halfway through them, with a traceback."""
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover - Windows
        return
    from multiprocessing import forkserver  # not on every platform

    context()
    if threading.current_thread() is not threading.main_thread():  # only the main thread sets handlers
        forkserver.ensure_running()
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the server it starts
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


# -- the judge's side ------------------------------------------------------------------------------
def judged_run(spec: RunSpec, registry: Registry, progress: Progress | None = None,
               in_process: bool = False) -> Record:
    """Run ``spec``: this process judges, a fresh learner process learns (``in_process``: both here).
    The strategy, model, dataset and training options are checked here before any data is loaded."""
    if in_process:
        strategy = create_strategy(spec.strategy, registry, **spec.options)
        return {**Run(spec, strategy, registry, progress).execute(), "judge": IN_PROCESS}
    return _judged(spec, registry, progress, None)[0]


def probed_run(spec: RunSpec, registry: Registry, probe: Probe) -> tuple[Record, Any]:
    """:func:`judged_run` with ``probe`` in the learner: the record and what ``probe.after`` returned."""
    return _judged(spec, registry, None, probe)


def _judged(spec: RunSpec, registry: Registry, progress: Progress | None, probe: Probe | None) -> tuple[Record, Any]:
    began = time.perf_counter()
    run = Run(spec, create_strategy(spec.strategy, registry, **spec.options), registry, progress)
    torch.manual_seed(spec.seed)
    data, judge = load_data(run.dataset, spec, torch.device("cpu"), registry.notify, run.training.validation,
                            run.training.validation_counted)
    start = Start(spec=spec, recipe=RegistryRecipe.of(registry, providers_only=True), environ=dict(os.environ),
                  threads=torch.get_num_threads(),
                  rng_state=torch.get_rng_state(), x=data.x.share_memory_(), x_test=data.x_test.share_memory_(),
                  initial_ids=data.initial_ids, initial_targets=data.ledger.target[data.initial_ids],
                  held_out=data.ledger.ids(HELD_OUT), classes=data.classes, unlabeled=data.unlabeled,
                  validation_ids=data.validation_ids, validation_targets=data.validation_targets, probe=probe)
    del data
    selects_on_test = run.training.patience and not run.training.validation
    referee = Referee(judge, run.training.epochs if selects_on_test else 0, progress)
    prepare()
    ctx = context()
    conn, child = ctx.Pipe()
    process = ctx.Process(target=learn, args=(child, start), daemon=True, name="sslzoo-learner")
    try:
        with _ctrl_c_held(), contextlib.nullcontext() if start.recipe.needs_main() else _main_left_out():
            process.start()
        child.close()
        referee.serve(conn, process, f"the learner process of strategy {spec.strategy!r} (seed {spec.seed})")
    finally:
        conn.close()
        if process.pid is not None:  # started
            _stop(process)
    evidence = torch.load(io.BytesIO(referee.evidence), weights_only=False) if referee.evidence else None
    return {**judge.record, "wall_seconds": round_float(time.perf_counter() - began, 3)}, evidence


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """While a learner starts: a Ctrl-C is held back, so that it never cuts the fork server's handshake
    in two (the server then prints a traceback and exits), and delivered again, to the handler that was
    there before, once the learner has started. Only the main thread handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            signal.raise_signal(signal.SIGINT)


@contextlib.contextmanager
def _main_left_out() -> Iterator[None]:
    """While a learner starts: ``__main__`` as a bare module, so that the learner does not import the
    caller's script again (``spawn`` and ``forkserver`` children do, which runs an unguarded script's
    top level in the child). The learner needs nothing of it unless a plugin is defined there."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _stop(process: Any) -> None:
    """End the learner: it has sent all it will (its record, or an error), or the judge gives up."""
    process.join(EXIT_GRACE)
    if process.is_alive():
        process.terminate()
        process.join(STOP_GRACE)
    if process.is_alive():
        process.kill()
        process.join()


class Referee:
    """The judge's end of the pipe: it answers the oracle for the open handle and the test accuracy
    for ``patience`` (at most ``epochs`` + 1 answers a round; none when the run has no patience),
    hands every report to the ``judge`` and the learner's progress to ``progress``."""

    def __init__(self, judge: Judge, epochs: int, progress: Progress | None) -> None:
        self.judge, self.epochs, self.progress = judge, epochs, progress
        self.handle: OracleHandle | None = None
        self.accuracies = 0
        self.evidence: bytes | None = None  # what a probe in the learner returned, saved

    def serve(self, conn: Connection, process: Any, learner: str) -> None:
        """Serve the ``process`` of the ``learner`` until it sends its record; its error is raised here,
        as is its death."""
        while True:
            try:
                kind, *args = conn.recv()
            except (EOFError, OSError):
                process.join(STOP_GRACE)
                code = process.exitcode
                how = (f"killed by {signal.Signals(-code).name}" if isinstance(code, int) and code < 0
                       else f"exit code {code}")
                raise LearnerDied(f"{learner} ended before it finished the run ({how})", code) from None
            if kind == "finish":
                record, self.evidence = args
                self.judge.finish(record)
                return
            if kind == "failed":
                error, text = args[0]
                raise error from RemoteTraceback(text)
            reply = self.dispatch(kind, [torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in args])
            if reply is not None:
                conn.send(reply)

    def dispatch(self, kind: str, args: list[Any]) -> tuple[str, Any] | None:
        """One message of the learner; the reply, for those that take one."""
        if kind == "progress":
            if self.progress is not None:
                self.progress(*args)
        elif kind == "open":
            self.handle = self.judge.handle(*args)
        elif kind == "close":
            if self.handle is not None:
                self.handle.close(*args)
        elif kind == "ask":
            try:
                if self.handle is None:
                    raise OracleError("no label call is open")
                return "labels", self.handle(*args).targets.numpy()
            except OracleError as exc:
                return "refused", str(exc)
        elif kind == "accuracy":
            if not self.epochs or self.accuracies > self.epochs:
                return "refused", "the judge answers the test accuracy once an epoch, and only for patience"
            self.accuracies += 1
            return "accuracy", self.judge.accuracy(*args)
        elif kind == "entry":
            entry = args[0]
            if entry["epoch"] == entry["epochs"]:
                self.accuracies = 0
            self.judge.entry(*args)
        elif kind in ("started", "pseudo"):
            getattr(self.judge, kind)(*args)
        else:
            raise WorkerError(f"the learner process sent an unknown message {kind!r}")
        return None


# -- the learner's side ----------------------------------------------------------------------------
def learn(conn: Connection, start: Start) -> None:
    """A learner's life: build the run from ``start``, run it with :class:`RemoteJudge` as its judge,
    send an error back if it fails. Ctrl-C is the judge's: it ends the learner."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    began = time.perf_counter()
    os.environ.clear()
    os.environ.update(start.environ)
    torch.set_num_threads(start.threads)
    warm_allocator()
    judge = RemoteJudge(conn)
    try:
        registry = start.recipe.build()
        spec = start.spec
        run = Run(spec, create_strategy(spec.strategy, registry, **spec.options), registry, judge.progress)
        device = run.device
        ledger = Ledger(start.x.shape[0], device)
        initial = start.initial_ids.to(device)
        ledger.assign(oracle_labels(initial, start.initial_targets.to(device)),
                      torch.ones(initial.numel(), device=device), 0)
        ledger.hold_out(start.held_out.to(device))
        validation = [None if t is None else t.to(device) for t in (start.validation_ids, start.validation_targets)]
        run.setup(RunData(x=start.x.to(device), x_test=start.x_test.to(device), ledger=ledger, initial_ids=initial,
                          classes=start.classes, unlabeled=start.unlabeled, validation_ids=validation[0],
                          validation_targets=validation[1]), judge)
        torch.set_rng_state(start.rng_state)  # as after the judge loaded the data, which may draw from it
        torch.set_num_threads(threads.choose(threads.parameters(run.model_spec.build, tuple(start.x.shape[1:]),
                                                                len(start.classes)), start.threads, os.environ))
        if start.probe is not None:
            start.probe.before(run)
        run.learn(began)
        evidence = None
        if start.probe is not None:
            buffer = io.BytesIO()
            torch.save(start.probe.after(run), buffer)
            evidence = buffer.getvalue()
        conn.send(("finish", judge.record, evidence))
    except (BrokenPipeError, ConnectionResetError, EOFError):  # the judge is gone (Ctrl-C, killed): so is the run
        return
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("failed", portable(exc)))


def warm_allocator() -> None:
    """Allocate and free a block of :data:`WARM_BLOCK` bytes, so that glibc's malloc serves blocks of
    up to that size from its heap (and trims the heap only when twice that is free) in this fresh
    process, as it does in a process that has already freed such a block (the judge's, once it has
    loaded a dataset). A fresh process starts at 128 KiB and raises the threshold only to the largest
    block it has freed so far: larger blocks, and the heap it trims whenever twice that is free, come
    back as fresh pages, a page fault each 4 KiB (pseudo_label on MNIST: 1.8x the page faults of the
    same run in one process, and about 2 s more system time). Elsewhere than glibc: one allocation, freed."""
    torch.empty(WARM_BLOCK, dtype=torch.uint8)


def plain(value: Any) -> Any:
    """``value`` as it goes over the pipe: a tensor as a NumPy array (on the host), anything else as is."""
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value


class RemoteJudge:
    """The learner's end of the pipe: a :class:`~sslzoo._engine.judge.Referee` whose judge is in another
    process. Reports go one way (pseudo-labels gathered on the device and sent in bulk, before any
    other report); the oracle and ``patience``'s accuracy wait for the answer. Tensors travel as
    NumPy arrays, by value: a tensor pickled as itself would be shared memory that the receiver
    fetches from a sender that may have exited."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.record: Record = {}  # without its figures: it goes to the judge last
        self.pending: dict[int, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        self.held = 0

    def _send(self, *message: Any) -> None:
        self._flush()
        self.conn.send(tuple(plain(part) for part in message))

    def _ask(self, *message: Any) -> Any:
        self._send(*message)
        kind, answer = self.conn.recv()
        if kind == "refused":
            raise OracleError(answer)
        return torch.from_numpy(answer) if isinstance(answer, np.ndarray) else answer

    def _flush(self) -> None:
        for key, parts in self.pending.items():
            self.conn.send(("pseudo", key, *(plain(torch.cat(column)) for column in zip(*parts))))
        self.pending.clear()
        self.held = 0

    def progress(self, info: dict[str, Any]) -> None:
        self.conn.send(("progress", info))

    def handle(self, ids: torch.Tensor, allowed: int, where: str) -> OracleHandle:
        self._send("open", ids, allowed, where)
        device = ids.device

        def answer(asked: torch.Tensor) -> torch.Tensor:
            return self._ask("ask", asked).to(device)

        return OracleHandle(ids, answer, allowed, where, on_close=lambda reason: self._send("close", reason))

    def started(self, run: dict[str, Any]) -> None:
        self._send("started", run)

    def pseudo(self, tally: int, buckets: torch.Tensor, ids: torch.Tensor, targets: torch.Tensor) -> None:
        self.pending.setdefault(tally, []).append((buckets, ids, targets))
        self.held += ids.numel()
        if self.held >= FLUSH_AT:
            self._flush()

    def accuracy(self, predicted: torch.Tensor) -> float:
        return float(self._ask("accuracy", predicted))

    def entry(self, entry: dict[str, Any], predicted: torch.Tensor, tally: dict[str, Any]) -> None:
        self._send("entry", entry, predicted, tally)

    def finish(self, record: Record) -> None:
        self._flush()
        self.record = record

