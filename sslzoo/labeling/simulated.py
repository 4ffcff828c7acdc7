"""A simulated labeler: a person stand-in that answers a session's queries with the dataset's hidden
labels, each one wrong with probability ``noise``.

It is the only part of a labeling session that reads a benchmark's hidden training labels, and it
answers the way a person does: it fills in the ``label`` column of a round's ``queries.csv``, and
the session imports that file like any other. :func:`simulate` runs whole rounds of it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch

from sslzoo._files import replace_file
from sslzoo.errors import OptionError, SessionError
from sslzoo.labeling.session import Session
from sslzoo.labeling.sheets import QUERY_COLUMNS, csv_bytes


class SimulatedLabeler:
    """Answers with the hidden labels of a session's dataset; with probability ``noise`` (per item,
    drawn once from ``seed``) the answer is another class, uniformly."""

    def __init__(self, session: Session, noise: float = 0.0, seed: int = 0) -> None:
        if not 0.0 <= noise <= 1.0:
            raise OptionError(f"--noise must be between 0 and 1, got {noise}")
        spec = session.spec
        dataset = session.registry.datasets.get(spec["dataset"]).obj(**spec["dataset_options"])
        truth = dataset.load(spec["seed"]).y_train.long()
        classes = len(session.classes)
        generator = torch.Generator().manual_seed(seed)
        wrong = torch.rand(truth.numel(), generator=generator) < noise
        shift = torch.randint(1, max(2, classes), (truth.numel(),), generator=generator)
        self._answers = torch.where(wrong & (truth >= 0), (truth + shift) % classes, truth)
        self.classes = session.classes
        self.name = "simulated" if noise == 0 else f"simulated (noise {noise:g})"

    def answer(self, item: int) -> str:
        value = int(self._answers[item])
        if value < 0:
            raise SessionError(f"item {item} has no label in the dataset; a simulated labeler answers only for "
                               f"items whose label the dataset holds")
        return self.classes[value]

    def fill(self, queries: Path, answers: Path) -> Path:
        """``queries`` (a round's ``queries.csv``) with its ``label`` column filled in, written to ``answers``."""
        rows = list(csv.DictReader(io.StringIO(queries.read_text(encoding="utf-8"))))
        for row in rows:
            row["label"] = self.answer(int(row["id"]))
        replace_file(answers, csv_bytes(QUERY_COLUMNS, rows), SessionError)
        return answers


def simulate(session: Session, labeler: SimulatedLabeler, rounds: int, k: int) -> list[dict[str, Any]]:
    """``rounds`` rounds of ``k`` queries answered by ``labeler`` and imported, then a training on the
    last answers; the history entries of the trainings it made."""
    if rounds < 1:
        raise OptionError(f"--rounds must be at least 1, got {rounds}")
    with session.writing():
        before = len(session.state().history)
        for _ in range(rounds):
            asked = session.next(k)
            filled = labeler.fill(asked.directory / "queries.csv", asked.directory / "answers-simulated.csv")
            session.import_labels(filled, labeler=labeler.name)
        session.train()
        return [e for e in session.state().history[before:] if e.get("event") == "train"]
