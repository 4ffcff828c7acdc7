"""A session's ledger of labels: who labeled which item as what, and when, one imported batch per line.

``labels.jsonl`` is a :class:`~sslzoo._files.Journal`: each import is appended as one line holding
the whole batch, so an import is all or nothing (a process killed while writing it leaves a torn
line that is ignored, and the same file can be imported again). Nothing is ever rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sslzoo._files import Journal
from sslzoo.errors import SessionError

LABELS_FILE = "labels.jsonl"
GIVEN = "given"
"""The labeler of the labels a session starts from: those the dataset itself holds (a person's own data)."""


@dataclass(frozen=True)
class Label:
    """One item's label: its global ``id``, the class name, who gave it and when (ISO 8601)."""

    id: int
    label: str
    by: str
    at: str


@dataclass(frozen=True)
class LabelBatch:
    """One import: its number (0, 1, ...), where it came from, when, the content hash of the file (none
    for the labels a session starts from), the query round it followed, its labels and the ids among
    them that are control labels (asked only for the session's control group,
    :mod:`sslzoo.labeling.control_queries`: the strategy's model never trains on them)."""

    number: int
    source: str
    imported: str
    sha256: str | None
    round: int
    labels: tuple[Label, ...]
    control: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"batch": self.number, "source": self.source, "imported": self.imported, "sha256": self.sha256,
                "round": self.round, "labels": [[x.id, x.label, x.by, x.at] for x in self.labels],
                "control": list(self.control)}

    @classmethod
    def from_json(cls, entry: Any, where: str) -> LabelBatch:
        try:
            labels = tuple(Label(int(i), str(c), str(b), str(t)) for i, c, b, t in entry["labels"])
            return cls(int(entry["batch"]), str(entry["source"]), str(entry["imported"]), entry["sha256"],
                       int(entry["round"]), labels, tuple(int(i) for i in entry.get("control", ())))
        except (KeyError, TypeError, ValueError):
            raise SessionError(f"{where}: not a batch of labels written by sslzoo") from None


class LabelLedger:
    """``DIR/labels.jsonl``: the batches of labels of the session in ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.journal = Journal(Path(directory) / LABELS_FILE, SessionError)

    def batches(self) -> list[LabelBatch]:
        lines = self.journal.read()
        return [LabelBatch.from_json(entry, where) for entry, where in zip(lines.entries, lines.origins)]

    def append(self, batch: LabelBatch) -> None:
        self.journal.append(batch.to_json())


def labeled(batches: list[LabelBatch]) -> dict[int, tuple[Label, int]]:
    """Each labeled id → its label and the number of the batch that gave it."""
    return {x.id: (x, batch.number) for batch in batches for x in batch.labels}
