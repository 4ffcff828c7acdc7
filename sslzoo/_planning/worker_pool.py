"""Local worker processes: ``sslzoo bench --workers N`` runs N runs at once on one machine.

Each worker is a fresh process (the ``spawn`` start method: no state inherited from the driver,
the same on every platform) with its share of the cores as torch threads, set before it does any
torch work. The driver hands each worker one run at a time over a pipe and reads back the run's
epochs and its record, so it always knows which run each worker holds: a worker that dies loses
only that run, which goes to a fresh worker up to ``retries`` times. Workers ignore Ctrl-C; the
driver ends every worker before it returns, whether the runs are done or stopped by Ctrl-C or a
run's error, and the records that reached it are already kept.

A script that runs a bench with workers must guard its entry point with
``if __name__ == "__main__":``, as any program using ``spawn`` processes must.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import warnings
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from sslzoo._contract.registry import Registry
from sslzoo._contract.strategy import Strategy
from sslzoo._engine.run import RunSpec
from sslzoo._planning.executor import (
    Executor,
    Listener,
    RegistryRecipe,
    check_count,
    execute_run,
    lost_runs_error,
    prepare_worker,
    usable_cores,
)
from sslzoo.errors import LearnerDied, RemoteTraceback, WorkerWarning, portable

#: Seconds a worker gets to exit after it is terminated, before it is killed.
STOP_GRACE = 5.0


def serve(conn: Connection, recipe: RegistryRecipe, threads: int) -> None:
    """A worker's life: take a run, send its epochs and its record back, until the driver ends it or
    is gone (then the worker ends quietly: it holds nothing the driver still wants)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it ends the workers
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, EOFError):
        prepare_worker(threads)
        try:
            registry = recipe.build()
        except Exception as exc:
            conn.send(("failed", portable(exc)))
            return
        while True:
            spec = conn.recv()
            try:
                record = execute_run(spec, registry, lambda info: conn.send(("progress", info)))
            except LearnerDied as died:  # the worker dies as the run's learner did: the driver retries the run
                died.end_like_it()
            except (BrokenPipeError, ConnectionResetError, EOFError):
                raise
            except Exception as exc:
                conn.send(("failed", portable(exc)))
                continue
            conn.send(("finished", record))


class _Worker:
    """One worker process, the driver's end of its pipe, and the run it holds (an index, or None)."""

    def __init__(self, context: Any, slot: int, recipe: RegistryRecipe, threads: int) -> None:
        self.slot = slot
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(target=serve, args=(child, recipe, threads), daemon=False,
                                                    name=f"sslzoo-worker-{slot}")
        self.process.start()
        child.close()
        self.job: int | None = None

    def give(self, index: int, spec: RunSpec) -> None:
        """Hand the worker run ``index``; a worker already dead is found by the driver's next wait."""
        self.job = index
        try:
            self.conn.send(spec)
        except OSError:
            pass

    def receive(self) -> tuple[str, Any]:
        """The next message of the worker, ``("idle", None)`` when none is waiting, ``("closed", None)``
        when its pipe closed (the process is gone)."""
        try:
            return self.conn.recv() if self.conn.poll() else ("idle", None)
        except (EOFError, OSError):
            return "closed", None

    def death(self) -> str:
        """How the process ended, for the report of a lost run."""
        self.process.join(STOP_GRACE)
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"its worker was killed by {signal.Signals(-code).name}"
        return f"its worker exited with code {code}"

    def stop(self) -> None:
        """End the process at once: it holds nothing the driver has not received (an idle worker), or
        a run the driver gives up (on Ctrl-C or another run's error). A terminated worker skips the
        interpreter's shutdown, which takes seconds once torch is loaded."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(STOP_GRACE)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class ProcessExecutor(Executor):
    """``workers`` local worker processes, each with ``threads`` torch threads (default: the usable
    cores shared among them, at least 1); a run whose worker dies is retried ``retries`` times."""

    def __init__(self, workers: int, *, threads: int | None = None, retries: int = 1) -> None:
        self.workers = check_count(workers, "--workers", 1)
        self.threads = max(1, usable_cores() // workers) if threads is None else check_count(threads, "threads", 1)
        self.retries = check_count(retries, "--retries", 0)

    def execute(self, runs: Sequence[tuple[RunSpec, Strategy]], registry: Registry, listener: Listener) -> None:
        recipe = RegistryRecipe.of(registry)
        specs = [spec for spec, _ in runs]
        todo = deque(range(len(specs)))
        tries = [0] * len(specs)
        lost: list[tuple[RunSpec, str]] = []
        done = 0
        context = multiprocessing.get_context("spawn")
        workers = [_Worker(context, slot, recipe, self.threads) for slot in range(min(self.workers, len(specs)))]

        def next_run(worker: _Worker) -> None:
            worker.job = None
            if todo:
                index = todo.popleft()
                tries[index] += 1
                worker.give(index, specs[index])
                listener.started(index, worker.slot)

        try:
            for worker in workers:
                next_run(worker)
            while any(worker.job is not None for worker in workers):
                busy = [worker for worker in workers if worker.job is not None]
                wait([worker.conn for worker in busy] + [worker.process.sentinel for worker in busy])
                for slot, worker in enumerate(workers):
                    kind = "idle"
                    while worker.job is not None:
                        kind, payload = worker.receive()
                        if kind == "progress":
                            listener.progress(worker.job, payload)
                        elif kind == "finished":
                            listener.finished(worker.job, payload)
                            done += 1
                            next_run(worker)
                        elif kind == "failed":
                            error, text = payload
                            raise error from RemoteTraceback(text)
                        else:
                            break
                    if worker.job is None or (kind != "closed" and worker.process.is_alive()):
                        continue
                    index, why = worker.job, worker.death()
                    worker.stop()
                    if tries[index] <= self.retries:
                        todo.appendleft(index)
                        spec = specs[index]
                        warnings.warn(f"{spec.strategy} seed {spec.seed}: {why}; it runs again (try "
                                      f"{tries[index] + 1} of {self.retries + 1})", WorkerWarning, stacklevel=1)
                    else:
                        lost.append((specs[index], why))
                    if todo:
                        workers[slot] = _Worker(context, slot, recipe, self.threads)
                        next_run(workers[slot])
                    else:
                        worker.job = None
        finally:
            for worker in workers:
                worker.stop()
        if lost:
            raise lost_runs_error(lost, self.retries + 1, done)
