"""A plugin for the executor tests, which worker processes and Ray tasks import by its module name:
a strategy whose process dies in the middle of its run, and a probe of each run's torch threads."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sslzoo import Context, Strategy, TrainOptions, hookimpl
from sslzoo._contract.strategy import Step

#: Environment variable: the file each run appends "pid threads" to when it starts.
THREADS_FILE = "SSLZOO_TEST_THREADS_FILE"
#: Environment variable: the test process, which ``dies_once`` never kills.
DRIVER_PID = "SSLZOO_TEST_DRIVER_PID"


@dataclass
class DiesOnceOptions(TrainOptions):
    marker: str = field(default="", metadata={"help": "a file: while it does not exist, the run makes it and kills "
                                                      "its process at its first training step"})


class DiesOnce(Strategy):
    """Supervised training whose first try is killed (SIGKILL, as by the out-of-memory killer) at its
    first training step; once the marker file exists, its runs train normally."""

    name = "dies_once"
    family = "baseline"
    paper = "—"
    summary = "supervised; its first try kills its own process mid-run"
    Options = DiesOnceOptions

    def loss(self, ctx: Context, step: Step) -> torch.Tensor:
        marker = Path(self.options.marker)
        if not marker.exists():
            if str(os.getpid()) == os.environ.get(DRIVER_PID):
                raise RuntimeError("dies_once runs in the test process itself, not in a worker")
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().loss(ctx, step)


@hookimpl
def register_strategies(register: Callable[[type], None]) -> None:
    register(DiesOnce)


@hookimpl
def run_started(run: dict[str, Any]) -> None:
    path = os.environ.get(THREADS_FILE)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()} {torch.get_num_threads()}\n")
