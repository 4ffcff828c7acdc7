"""The executor that ``sslzoo bench``'s options ask for: serial, worker processes or Ray."""

from __future__ import annotations

from sslzoo._planning.executor import Executor, SerialExecutor, check_count
from sslzoo._planning.ray_cluster import RayExecutor
from sslzoo._planning.worker_pool import ProcessExecutor
from sslzoo.errors import OptionError

EXECUTORS = ("local", "ray")


def make_executor(kind: str = "local", *, workers: int = 1, ray_address: str | None = None,
                  cpus_per_run: float | None = None, gpus_per_run: float | None = None,
                  retries: int | None = None, in_process: bool = False) -> Executor:
    """The executor ``sslzoo bench``'s options ask for; an option that does not apply to it is an
    OptionError saying what it needs (``None``: not given)."""
    if kind not in EXECUTORS:
        raise OptionError(f"--executor {kind!r} is not allowed: use {' or '.join(EXECUTORS)}")
    check_count(workers, "--workers", 1)
    if in_process and (kind != "local" or workers != 1):
        raise OptionError("--in-process runs each learner in this process: it does not go with --workers or "
                          "--executor ray")
    if kind == "ray":
        if workers != 1:
            raise OptionError("--workers is for local worker processes; with --executor ray each run is a Ray "
                              "task (give it more cores with --cpus-per-run)")
        return RayExecutor(ray_address, cpus_per_run=1.0 if cpus_per_run is None else cpus_per_run,
                           gpus_per_run=gpus_per_run or 0.0, retries=1 if retries is None else retries)
    given = [flag for flag, value in (("--ray-address", ray_address), ("--cpus-per-run", cpus_per_run),
                                      ("--gpus-per-run", gpus_per_run)) if value is not None]
    if given:
        raise OptionError(f"{given[0]} needs --executor ray")
    if workers == 1:
        if retries is not None:
            raise OptionError("--retries needs --workers N (N > 1) or --executor ray: a serial bench runs in "
                              "this process")
        return SerialExecutor(in_process)
    return ProcessExecutor(workers, retries=1 if retries is None else retries)
