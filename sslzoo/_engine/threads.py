"""How many intra-op threads a run's learner uses: chosen by the work, bounded by the free cores.

torch starts with one intra-op thread per core. That pays for a large model on a quiet machine,
and costs dearly elsewhere: a step of a tiny network is over before a second thread has woken, and
on a machine where another process keeps a core busy, every parallel region of a two-thread run
waits for the thread that shares that core (a grid of two-moons runs took 44.5 s at torch's default
2 threads against 5.6 s at 1 with one core busy, docs/performance.md). So a learner takes:

* the threads it was told to use when the user said so (``SSLZOO_THREADS``, or ``OMP_NUM_THREADS``
  which torch itself reads);
* else 1 for a model of at most :data:`SMALL_MODEL` parameters;
* else its share of the cores (``--workers`` splits them), but no more than the cores that are
  free enough to help: those that other processes kept less than half busy over a short look at
  ``/proc/stat`` (:func:`free_cores`; where there is no ``/proc/stat``, every usable core).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn

from sslzoo.errors import OptionError

THREADS_ENV = "SSLZOO_THREADS"
#: Models with at most this many parameters train on one thread: their steps are too short to share.
SMALL_MODEL = 50_000
#: How long :func:`free_cores` watches the cores, in seconds.
LOOK = 0.03


def requested(environ: Mapping[str, str]) -> int | None:
    """The threads the user asked for (``SSLZOO_THREADS``, else ``OMP_NUM_THREADS``); None: choose."""
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        text = environ.get(name, "").strip()
        if text:
            if not text.isdigit() or int(text) < 1:
                raise OptionError(f"{name}={text!r} is not allowed: give a whole number of threads, at least 1")
            return int(text)
    return None


def parameters(build: Callable[[tuple[int, ...], int], nn.Module], shape: tuple[int, ...], classes: int) -> int:
    """The parameter count of the model ``build`` makes, built on the meta device (no memory), or on
    the CPU where a model cannot be built there; the random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        try:
            with torch.device("meta"):
                model = build(shape, classes)
        except Exception:  # a builder that computes with its tensors: build it for real
            model = build(shape, classes)
    return sum(p.numel() for p in model.parameters())


def _cpu_times(path: str = "/proc/stat") -> dict[str, tuple[int, int]] | None:
    """Per core (``cpuN``): (busy, total) jiffies so far; None where the file cannot be read."""
    try:
        with open(path, encoding="ascii") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            values = [int(f) for f in fields[:8]]
            idle = values[3] + values[4]  # idle and iowait
            times[name] = (sum(values) - idle, sum(values))
    return times


def free_cores(usable: int, look: float = LOOK) -> int:
    """The usable cores that other processes kept less than half busy over ``look`` seconds (at
    least 1; ``usable`` where the machine's load cannot be read). The caller is idle meanwhile."""
    before = _cpu_times()
    if not before:
        return usable
    time.sleep(look)
    after = _cpu_times() or {}
    mine = _affinity()
    busy = 0
    for name, (busy_after, total_after) in after.items():
        busy_before, total_before = before.get(name, (busy_after, total_after))
        if (mine is None or int(name[3:]) in mine) and total_after > total_before and \
                (busy_after - busy_before) / (total_after - total_before) > 0.5:
            busy += 1
    return max(1, min(usable, (len(mine) if mine is not None else usable) - busy))


def _affinity() -> set[int] | None:
    """The cores this process may run on; None where the platform does not say."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return None


def choose(model_parameters: int, share: int, environ: Mapping[str, str]) -> int:
    """The intra-op threads for training a model of ``model_parameters`` parameters with ``share``
    cores to this run (see the module)."""
    asked = requested(environ)
    if asked is not None:
        return asked
    if share <= 1 or model_parameters <= SMALL_MODEL:
        return 1
    return free_cores(share)
