"""Labels a person gave, as files: a CSV with ``id`` and ``label`` columns, or a Label Studio export.

The CSV is what ``sslzoo label next`` writes as ``queries.csv`` with its ``label`` column filled in:
rows whose label is empty are items nobody labeled yet and are left out; other columns are
ignored, except an optional ``labeler`` column naming who labeled each row. Label Studio's CSV
export reads the same way: its ``sslzoo_id`` column names the item (its ``id`` is Label Studio's
own task number) and its ``annotator`` column the labeler.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from sslzoo.errors import SessionError


@dataclass(frozen=True)
class Answer:
    """One label read from a file: the item's global id, the class name, who and when (when the file
    says), and where in the file it was read (for error messages)."""

    id: int
    label: str
    by: str | None
    at: str | None
    where: str


def decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SessionError(f"{path}: not a text file (not UTF-8 at byte {exc.start})") from None


def read_csv(text: str, path: Path) -> list[Answer]:
    """The labeled rows of a CSV with ``id`` and ``label`` columns (and optionally ``labeler``)."""
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    item = "sslzoo_id" if "sslzoo_id" in columns else "id"
    missing = [c for c in (item, "label") if c not in columns]
    if missing:
        has = ", ".join(reader.fieldnames or []) or "none"
        raise SessionError(f"{path}: a labels CSV needs the columns id and label; it has no {' or '.join(missing)} "
                           f"(its columns: {has})")
    by_column = next((columns[c] for c in ("labeler", "annotator") if c in columns), None)
    answers = []
    for row in reader:
        where = f"{path}:{reader.line_num}"
        label = (row.get(columns["label"]) or "").strip()
        if not label:
            continue
        raw = (row.get(columns[item]) or "").strip()
        if not raw.lstrip("-").isdigit():
            raise SessionError(f"{where}: {item} {raw!r} is not a whole number")
        by = (row.get(by_column) or "").strip() if by_column else ""
        answers.append(Answer(int(raw), label, by or None, None, where))
    return answers
