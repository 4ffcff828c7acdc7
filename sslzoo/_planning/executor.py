"""Executors: who runs the planned runs of a bench, while the driver alone keeps their records.

A bench plans a grid of runs (strategies × seeds, per label count and preset) and hands the runs
still to do to an :class:`Executor`. The executor runs them wherever it runs them (this process,
local worker processes, Ray tasks) and reports each one back to the driver, the process that
called it, through a :class:`Listener`: started, its epochs' progress, finished with its record.
Every report arrives in the driver's own thread, so the driver is the only writer of the results
store; crash safety, the one-writer lock and ``--resume`` are the same whichever executor ran the
runs.

A run is the same run wherever it executes: the worker builds the strategy again from the run's
spec (as the driver built it) with a registry rebuilt from the driver's plugins
(:class:`RegistryRecipe`), and a run's randomness comes from its seed alone, so its record is the
serial run's record (the wall time aside) when the run has the same number of torch threads.

A worker process that dies (killed, out of memory) loses only the run it was running, which is
retried up to ``retries`` times; a run still not done is reported at the end with
:class:`~sslzoo.errors.WorkerError`, after every other run has finished and been kept.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from sslzoo._contract.registry import Registry
from sslzoo._contract.strategy import Strategy
from sslzoo._engine import learner as learner_process
from sslzoo._engine.learner import judged_run
from sslzoo._engine.registry_recipe import RegistryRecipe
from sslzoo._engine.run import Progress, Record, RunSpec
from sslzoo.errors import OptionError, WorkerError

__all__ = ["Executor", "Listener", "RegistryRecipe", "SerialExecutor", "execute_run"]


class Listener(Protocol):
    """The driver's side of an executor: every call comes in the driver's thread."""

    def started(self, index: int, worker: int) -> None:
        """Run ``index`` of the planned runs started, on worker ``worker`` (0 .. workers-1)."""

    def progress(self, index: int, info: dict[str, Any]) -> None:
        """Run ``index`` finished an epoch (the engine's progress information)."""

    def finished(self, index: int, record: Record) -> None:
        """Run ``index`` finished with ``record``."""


class Executor(ABC):
    """Runs the planned runs and reports each to the driver's :class:`Listener`."""

    @abstractmethod
    def execute(self, runs: Sequence[tuple[RunSpec, Strategy]], registry: Registry, listener: Listener) -> None:
        """Run every (spec, strategy) pair, reporting to ``listener``; returns when all are done.

        An exception raised by a run stops the others and is raised here (as it would be serially);
        runs lost with their worker and not done after the retries end in a
        :class:`~sslzoo.errors.WorkerError` raised once the other runs are over."""


class SerialExecutor(Executor):
    """One run after another, judged in this process, each learner in a fresh process of its own
    (``in_process``: the learner here too, for debugging): what ``sslzoo bench`` does without
    ``--workers``."""

    def __init__(self, in_process: bool = False) -> None:
        self.in_process = in_process

    def execute(self, runs: Sequence[tuple[RunSpec, Strategy]], registry: Registry, listener: Listener) -> None:
        if not self.in_process:
            learner_process.prepare()
        for index, (spec, _) in enumerate(runs):
            listener.started(index, 0)

            def progress(info: dict[str, Any], index: int = index) -> None:
                listener.progress(index, info)

            listener.finished(index, judged_run(spec, registry, progress, self.in_process))


def execute_run(spec: RunSpec, registry: Registry, progress: Progress | None = None) -> Record:
    """One run in a worker: the strategy built from ``spec`` as the driver built it, then run with its
    learner in a process of its own (:func:`~sslzoo._engine.learner.judged_run`)."""
    return judged_run(spec, registry, progress)


def prepare_worker(threads: int) -> None:
    """A worker process before its runs: its torch threads, set before any torch work, and its
    learners' fork server started (:func:`~sslzoo._engine.learner.prepare`)."""
    torch.set_num_threads(threads)
    learner_process.prepare()


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_count(value: Any, flag: str, minimum: int) -> int:
    """``value`` must be an integer ≥ ``minimum``: a bad one is an OptionError naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(f"{flag} must be an integer of at least {minimum}, got {value!r}")
    return value


def lost_runs_error(lost: Sequence[tuple[RunSpec, str]], tries: int, done: int) -> WorkerError:
    """The error for runs whose workers died on each of their ``tries``."""
    described = "; ".join(f"{spec.strategy} seed {spec.seed} ({why})" for spec, why in lost)
    return WorkerError(f"runs lost with their workers, {tries} {'try' if tries == 1 else 'tries'} each: {described}; "
                       f"the {done} runs that finished were kept; run the same command with --resume to run the "
                       f"lost ones")


#: ``sslzoo bench --executor``: this machine (serially, or ``--workers N`` processes), or Ray tasks.
