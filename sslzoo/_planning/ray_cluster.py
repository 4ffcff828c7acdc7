"""Ray tasks: ``sslzoo bench --executor ray`` runs each run of the grid as a Ray task.

Ray schedules the tasks on its cluster by their resource requests (``cpus_per_run`` CPUs and
``gpus_per_run`` GPUs each, fractions allowed), starts the workers and retries a task whose worker
died (``max_retries``); sslzoo adds no scheduling of its own. Each task returns its record to the
driver, which keeps it in the results store: one task per run and one record per task, so a retry
never duplicates a record. A run that raises stops the bench (as it would serially); a run whose
workers died on every try is reported at the end, after the other runs are kept.

The cluster is the one at ``address`` (or Ray's ``RAY_ADDRESS``), else a Ray instance started here
for the bench and shut down after it (one already started in this process with ``ray.init`` is
used as it is). sslzoo and the plugins the driver uses must be installed on every node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import socket
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

from sslzoo._contract.registry import Registry
from sslzoo._contract.strategy import Strategy
from sslzoo._engine.run import Record, RunSpec
from sslzoo._planning.executor import (
    Executor,
    Listener,
    RegistryRecipe,
    check_count,
    execute_run,
    lost_runs_error,
    prepare_worker,
)
from sslzoo.errors import LearnerDied, OptionError, WorkerError

#: What a Ray address looks like: ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``.
ADDRESS = re.compile(r"auto|(ray://)?[^\s:/]+:\d+")

#: How often (seconds) the driver checks that its own raylet is still there while it waits for runs.
RAYLET_POLL_S = 0.5
#: The smallest object store Ray accepts (bytes).
OBJECT_STORE_MIN = 78_643_200
#: The address space (bytes) under which a local Ray instance aborts this process as it starts (its
#: threads' stacks and shared-memory maps; 5.5 GB sufficed on a 2-core machine, 5 GB did not).
ADDRESS_SPACE_MIN = 6 * 2**30
MISSING = "--executor ray needs Ray, which is not installed: pip install 'sslzoo[ray]'"
ADDRESS_ENV = "RAY_ADDRESS"


def import_ray() -> ModuleType:
    """The ``ray`` module; an OptionError saying how to install it when it is missing."""
    try:
        import ray
    except ImportError:
        raise OptionError(MISSING) from None
    return ray


def ray_task(spec: RunSpec, recipe: RegistryRecipe, threads: int) -> Record:
    """One run as a Ray task: its threads, then the run, its record returned to the driver."""
    prepare_worker(threads)
    try:
        return execute_run(spec, recipe.build())
    except LearnerDied as died:  # the task's worker dies as the run's learner did: Ray retries the task
        died.end_like_it()


@contextlib.contextmanager
def connected(ray: ModuleType, address: str | None) -> Iterator[None]:
    """Ray connected for the block: to the cluster at ``address`` or ``RAY_ADDRESS``, else to a local
    instance started here, which sees this process's import path; left as it is when this process
    already started Ray (an address given must still answer)."""
    where = address or os.environ.get(ADDRESS_ENV)
    given = "--ray-address" if address else ADDRESS_ENV
    if where:
        if not ADDRESS.fullmatch(where):
            raise OptionError(f"{given} {where!r} is not a Ray address: use HOST:PORT, ray://HOST:PORT or auto")
        _check_reachable(where, given)
    if ray.is_initialized():
        yield
        return
    store = None if where else _object_store_bytes()
    try:
        if where:
            ray.init(address=where, logging_level=logging.WARNING)
        else:
            path = os.pathsep.join(os.path.abspath(entry) for entry in sys.path)
            ray.init(runtime_env={"env_vars": {"PYTHONPATH": path}}, include_dashboard=False,
                     logging_level=logging.WARNING, object_store_memory=store)
    except ConnectionError as exc:
        raise OptionError(f"{given} {where}: no Ray cluster answers there ({exc})") from None
    except Exception as exc:  # a malformed address (ValueError), a local instance that cannot start, ...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OptionError(f"{given} {where}: Ray cannot connect there ({reason})" if where
                          else f"--executor ray: Ray could not start a local instance ({reason})") from None
    try:
        yield
    finally:
        ray.shutdown()


def _object_store_bytes() -> int | None:
    """The local instance's object store under an address-space limit (``ulimit -v``): an eighth of it,
    which the records and recipe it holds never approach (Ray's default, 30 % of the machine's memory,
    is mapped into this process and would crash it there); None (Ray's default) without a limit.
    Below :data:`ADDRESS_SPACE_MIN` Ray's own threads and maps abort the process, so that is refused."""
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    if limit < ADDRESS_SPACE_MIN:
        raise OptionError(f"--executor ray: this process may map {limit / 2**30:.1f} GiB (ulimit -v), and a local "
                          f"Ray instance needs about {ADDRESS_SPACE_MIN / 2**30:.0f} GiB; raise the limit, or "
                          f"use --workers N")
    return max(OBJECT_STORE_MIN, limit // 8)


def check_resources(ray: ModuleType, cpus: float, gpus: float) -> None:
    """A run's request must fit the cluster's total, or no run could ever be scheduled (Ray would wait
    for resources that never come)."""
    total = ray.cluster_resources()
    for flag, asked, name in (("--cpus-per-run", cpus, "CPU"), ("--gpus-per-run", gpus, "GPU")):
        have = float(total.get(name, 0.0))
        if asked > have:
            raise OptionError(f"{flag} {asked:g}: the Ray cluster has {have:g} {name}s in all, so no run could "
                              f"ever start; ask for at most {have:g}")


def _check_reachable(address: str, given: str, timeout: float = 10.0) -> None:
    """A ``HOST:PORT`` or ``ray://HOST:PORT`` address must accept a connection within ``timeout``
    seconds (Ray itself would wait minutes for a head that is not there); ``auto`` is Ray's to check."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit() or "://" in host:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise OptionError(f"{given} {address}: no Ray cluster answers there ({exc.strerror or exc})") from None


def _raylet_socket(ray: ModuleType) -> str | None:
    """The Unix socket of the raylet this driver talks to (None for a Ray Client connection, which has
    no local raylet, or where this Ray keeps it elsewhere)."""
    node = getattr(getattr(ray, "_private", None), "worker", None)
    path = getattr(getattr(node, "_global_node", None), "raylet_socket_name", None)
    return path if isinstance(path, str) and os.path.exists(path) else None


def _raylet_alive(path: str | None) -> bool:
    """Whether the raylet at ``path`` still accepts connections (a raylet that died refuses them at once;
    Ray itself would end this process moments later with no word of the records kept)."""
    if path is None:
        return True
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _at_least(value: Any, flag: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise OptionError(f"{flag} must be a number of at least {minimum:g}, got {value!r}")
    return float(value)


class RayExecutor(Executor):
    """Each run a Ray task asking for ``cpus_per_run`` CPUs (its torch threads: the whole CPUs of
    it, at least 1) and ``gpus_per_run`` GPUs; Ray retries a task whose worker died ``retries`` times."""

    def __init__(self, address: str | None = None, *, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
                 retries: int = 1) -> None:
        self.address = address
        self.cpus = _at_least(cpus_per_run, "--cpus-per-run", 0.01)
        self.gpus = _at_least(gpus_per_run, "--gpus-per-run", 0.0)
        self.retries = check_count(retries, "--retries", 0)

    def execute(self, runs: Sequence[tuple[RunSpec, Strategy]], registry: Registry, listener: Listener) -> None:
        ray = import_ray()
        from ray.exceptions import RayError, RayTaskError

        recipe = RegistryRecipe.of(registry)
        lost: list[tuple[RunSpec, str]] = []
        done = 0
        with connected(ray, self.address):
            check_resources(ray, self.cpus, self.gpus)
            task = ray.remote(ray_task).options(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
                                                retry_exceptions=False)
            shared = ray.put(recipe)
            threads = max(1, int(self.cpus))
            pending = {task.remote(spec, shared, threads): index for index, (spec, _) in enumerate(runs)}
            raylet = _raylet_socket(ray)
            try:
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1, timeout=RAYLET_POLL_S)
                    if not ready:
                        if not _raylet_alive(raylet):
                            raise WorkerError(f"the Ray node this driver runs on went away (its raylet stopped); "
                                              f"the {done} runs that finished were kept; run the same command "
                                              f"with --resume to run the other {len(pending) + len(lost)}")
                        continue
                    index = pending.pop(ready[0])
                    try:
                        record = ray.get(ready[0])
                    except RayTaskError as exc:  # the run itself raised: stop, as a serial bench would
                        raise (exc.cause if isinstance(exc.cause, Exception) else exc) from exc
                    except RayError as exc:  # its worker died on every try
                        lost.append((runs[index][0], f"Ray: {type(exc).__name__}"))
                        continue
                    listener.finished(index, record)
                    done += 1
            finally:
                for ref in pending if _raylet_alive(raylet) else ():
                    ray.cancel(ref, force=True)
        if lost:
            raise lost_runs_error(lost, self.retries + 1, done)
