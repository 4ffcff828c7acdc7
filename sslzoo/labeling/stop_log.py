"""A session's stopping criterion: the predictions it judges, kept at each training, and its verdict
replayed from them.

A session started with ``--stop NAME[:KEY=VALUE,...]`` (the training option ``stop``, as ``sslzoo
bench --stop`` takes it; :mod:`sslzoo._contract.stopping`) never ends by itself: people decide. After
each training of the strategy's model, :func:`save` keeps the class probabilities that model gives
the criterion's watched ids in ``stopping/training-N.pt`` (float32, as a benchmark's criterion sees
them: a float16 copy would round a probability of 0.9999 to 1 and an entropy threshold such as
``max_confidence``'s 0.001 with it). The watched ids are the unlabeled pool at that training
(``stop_set`` 0), or ``stop_set`` ids drawn from the pool at the first training with the session's
seed, as a benchmark draws them at its first check, and read back from that training's file ever after.

Each command is its own process, so a criterion's state between trainings cannot live in memory:
:func:`verdict` builds the criterion afresh and feeds it the saved predictions in training order,
and the first training at which it fires is the answer, the same whether the session took one
process or many. Where a session differs from a benchmark's rounds: a training that learned from no
new label (``sslzoo label train --force``) takes the place of the one before it, since a criterion
judges how the model changes as labels arrive (a retrained model's agreement with itself would count
as a stabilized round); and a training killed before its model was saved is left out (its file is
replaced when the training runs again).
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sslzoo._contract.options import options_dict
from sslzoo._contract.registry import Registry
from sslzoo._contract.stopping import Predictions
from sslzoo._engine.run import Run
from sslzoo._engine.stopping_rule import Stopping
from sslzoo._files import replace_file
from sslzoo.errors import SessionError

STOP_DIR = "stopping"
"""The session's folder of the predictions its stopping criterion judges, one file per training."""


def _path(directory: Path, training: int) -> Path:
    return directory / STOP_DIR / f"training-{training}.pt"


def _load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise SessionError(f"{path}: cannot read the predictions the stopping criterion judges ({exc}); the "
                           f"session's stopping folder is damaged") from None


def save(directory: Path, run: Run, stopping: Stopping, training: int, batches: int, labels: int) -> Path:
    """Keep what ``stopping``'s criterion judges of training ``training`` of ``run`` (its model trained on
    ``labels`` labels of the ledger's first ``batches`` batches): the watched ids and the class
    probabilities the model gives them. The file is replaced whole."""
    size = stopping.criterion.options.stop_set
    earlier = [n for n in range(1, training) if _path(directory, n).exists()]
    if size and earlier:  # the stop set of the session's first training, the same ids ever after
        ids = _load(_path(directory, earlier[0]))["ids"].to(run.device)
    else:  # the pool now (stop_set 0), or the first training's draw from it, as a benchmark's first check
        ids = stopping.watched(run.ctx)
    probs = run.ctx.predict(ids).float() if ids.numel() else torch.zeros(0, len(run.data.classes))
    buffer = io.BytesIO()
    torch.save({"training": training, "batches": batches, "labels": labels, "ids": ids.cpu(), "probs": probs.cpu()},
               buffer)
    path = _path(directory, training)
    path.parent.mkdir(exist_ok=True)
    replace_file(path, buffer.getvalue(), SessionError)
    return path


def _kept(directory: Path, trained: int) -> Iterator[dict[str, Any]]:
    """The predictions kept for trainings 1 to ``trained``, in order, each read when it is needed; a
    retraining on the same labels in place of the training before it."""
    previous: dict[str, Any] | None = None
    for training in range(1, trained + 1):
        path = _path(directory, training)
        if not path.exists():
            continue
        saved = _load(path)
        if previous is not None and previous["batches"] != saved["batches"]:
            yield previous
        previous = saved
    if previous is not None:
        yield previous


def verdict(directory: Path, text: str, registry: Registry, trained: int) -> dict[str, Any] | None:
    """Where the criterion of the ``stop`` option ``text`` first fires over the predictions kept for the
    session's trainings 1 to ``trained`` (the saved model's): ``{"criterion", "options", "training",
    "labels", "why"}``, the training whose model fired it, with the labels it learned from and why
    (one line); None when it has not fired."""
    criterion = Stopping(registry, text, f"labeling session {directory}").criterion
    for saved in _kept(directory, trained):
        if saved["ids"].numel() == 0:  # nothing left to judge, as a benchmark's criterion on an empty pool
            continue
        why = criterion.check(Predictions(saved["training"], saved["ids"], saved["probs"]))
        if why is not None:
            return {"criterion": criterion.name, "options": options_dict(criterion.options),
                    "training": saved["training"], "labels": saved["labels"], "why": why}
    return None
