"""A user's arrays as tensors: NumPy ``.npz`` files and CSV files of numeric features.

An ``.npz`` file holds ``x`` (samples first: features (N, D), or images (N, H, W), (N, C, H, W) or
(N, H, W, C)) and ``y`` (N integer labels, ``-1`` for a sample without a label), optionally
``x_test`` and ``y_test`` in the same forms and ``classes`` (the class names in index order).

A CSV file has a header row naming its columns; one of them holds the labels (any text: the class
names, sorted, numerically when they are all integers; an empty cell is a sample without a
label), the others numbers (the features), apart from the columns the user leaves out.

Both need at least two classes and one feature; inputs must fit in float32 (the engine's type);
labels without class names must be the classes 0 .. C-1, each of them used. Every mistake is a
:class:`~sslzoo.errors.DataError` naming the file (and for a CSV file the line and column, and the
label or class at fault).
"""

from __future__ import annotations

import collections
import csv
import difflib
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sslzoo._contract.dataset import UNLABELED
from sslzoo.errors import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)
"""The largest input the engine's float32 tensors hold: a larger one would become infinite."""


def data_file(path: str, what: str) -> Path:
    """``path`` as an existing file (a DataError saying what it should be otherwise)."""
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"{what} {file}: no such file")
    if not file.is_file():
        raise DataError(f"{what} {file}: not a file")
    return file.resolve()


# -- .npz -------------------------------------------------------------------------------------------
NPZ_KEYS = ("x", "y", "x_test", "y_test", "classes")


@dataclass
class NpzArrays:
    """What an ``.npz`` file holds, checked: inputs as images (N, C, H, W) or features (N, D)."""

    x: Tensor
    y: Tensor
    x_test: Tensor
    y_test: Tensor
    classes: list[str]


def npz_is_images(path: Path) -> bool:
    """Whether the file's ``x`` is images (3 or 4 dimensions), read from the array's header alone."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("x.npy") as member:
            version = np.lib.format.read_magic(member)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape = header(member)[0]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False  # reading the file says what is wrong with it
    return len(shape) >= 3


def read_npz(path: Path) -> NpzArrays:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DataError(f"{path}: no array {' or '.join(missing)} (it holds {', '.join(arrays) or 'nothing'}); an "
                        f".npz dataset holds x and y (-1: no label), optionally x_test, y_test and classes")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"{path}: holds {'x_test' if 'x_test' in arrays else 'y_test'} without "
                        f"{'y_test' if 'x_test' in arrays else 'x_test'}; give both or neither")
    classes = [str(c) for c in arrays["classes"].tolist()] if "classes" in arrays else []
    x = _inputs(arrays["x"], path, "x")
    y = _labels(arrays["y"], path, "y", len(x))
    if "x_test" in arrays:
        x_test = _inputs(arrays["x_test"], path, "x_test")
        y_test = _labels(arrays["y_test"], path, "y_test", len(x_test))
        if x_test.shape[1:] != x.shape[1:]:
            raise DataError(f"{path}: x_test's samples have shape {tuple(x_test.shape[1:])}, x's "
                            f"{tuple(x.shape[1:])}; they must be the same")
    else:
        x_test, y_test = x[:0], y[:0]
    if int(y.max()) < 0:
        raise DataError(f"{path}: y holds no label at all (every entry is -1); label at least one sample of each class")
    return NpzArrays(x, y, x_test, y_test, _npz_classes(classes, torch.cat([y, y_test]), path))


def _npz_classes(classes: list[str], labels: Tensor, path: Path) -> list[str]:
    """The class names: ``classes`` checked (distinct, at least two, every label names one), or without
    them the labels 0 .. C-1, each used by a sample."""
    used = torch.unique(labels[labels >= 0]).tolist()
    if classes:
        twice = [(name, count) for name, count in collections.Counter(classes).items() if count > 1]
        if twice:
            raise DataError(f"{path}: classes names {twice[0][0]!r} {twice[0][1]} times; class names must be distinct")
        if used[-1] >= len(classes):
            raise DataError(f"{path}: a label is {used[-1]} but classes names {len(classes)} classes "
                            f"(0-{len(classes) - 1})")
        named = classes
    else:
        if used != list(range(len(used))):
            gap = next(c for c, label in enumerate(used) if label != c)
            raise DataError(f"{path}: label {used[-1]} is used but no sample has label {gap}; without a "
                            f"classes array the labels must be 0 .. C-1, each of them used (labels here: "
                            f"{_some(used)}); give classes, or number the classes from 0")
        named = [str(c) for c in used]
    if len(named) < 2:
        raise DataError(f"{path}: one class only ({named[0]!r}); a classifier needs at least two classes")
    return named


def _some(values: Sequence[object], shown: int = 8) -> str:
    """The first ``shown`` values, comma-separated, with how many more there are."""
    text = ", ".join(map(str, values[:shown]))
    return text + (f" and {len(values) - shown} more" if len(values) > shown else "")


def _inputs(array: np.ndarray, path: Path, key: str) -> Tensor:
    if array.dtype.kind not in "uif" or array.ndim not in (2, 3, 4) or len(array) == 0:
        raise DataError(f"{path}: {key} has shape {array.shape} and dtype {array.dtype}; expected numbers shaped "
                        f"(N, D) features or (N, H, W), (N, C, H, W), (N, H, W, C) images")
    if 0 in array.shape[1:]:
        raise DataError(f"{path}: {key} has shape {array.shape}: its samples hold no values; each sample needs at "
                        f"least one feature (or pixel)")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise DataError(f"{path}: {key} holds NaN or infinite values")
    largest = float(np.abs(array).max()) if array.dtype.kind == "f" or array.dtype.itemsize > 2 else 0.0
    if largest > FLOAT32_MAX:
        raise DataError(f"{path}: {key} holds {largest:g}, beyond the float32 range the inputs are read in "
                        f"(at most {FLOAT32_MAX:.4g} in size); rescale the values")
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)  # (N, H, W, C) → (N, C, H, W)
    x = torch.from_numpy(np.ascontiguousarray(array))
    return x if x.dtype == torch.uint8 else x.float()


def _labels(array: np.ndarray, path: Path, key: str, n: int) -> Tensor:
    if array.ndim != 1 or len(array) != n:
        raise DataError(f"{path}: {key} has shape {array.shape}, expected ({n},): one label per sample")
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise DataError(f"{path}: {key} holds numbers that are not whole; labels are class indices (-1: none)")
    elif array.dtype.kind not in "iu":
        raise DataError(f"{path}: {key} has dtype {array.dtype}; labels are integer class indices (-1: none)")
    y = torch.from_numpy(array.astype(np.int64))
    if y.numel() and int(y.min()) < UNLABELED:
        raise DataError(f"{path}: {key} holds {int(y.min())}; labels are class indices >= 0, or -1 for no label")
    return y


# -- CSV --------------------------------------------------------------------------------------------
@dataclass
class Table:
    """A CSV file's features (N, D) float32, its label cells ("" for none), the feature columns' names
    and the line of each row in the file."""

    x: Tensor
    labels: list[str]
    columns: list[str]
    lines: list[int]


def read_csv(path: Path, label: str, ignore: Sequence[str] = (), columns: Sequence[str] | None = None) -> Table:
    """The rows of ``path``: the ``label`` column's cells and the other columns (but ``ignore``) as
    numbers; with ``columns`` the file must have exactly those feature columns (a test file)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{path}: empty, expected a header row naming the columns")
    header = [cell.strip() for cell in rows[0]]
    unknown = [c for c in [label, *ignore] if c not in header]
    if unknown:
        close = difflib.get_close_matches(unknown[0], header, n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise DataError(f"{path}: no column {unknown[0]!r}{hint}; its columns are {', '.join(header)}")
    at = header.index(label)
    features = [i for i, c in enumerate(header) if c != label and c not in ignore]
    names = [header[i] for i in features]
    if not features:
        raise DataError(f"{path}: no feature columns besides the label column {label!r}")
    if columns is not None and names != list(columns):
        raise DataError(f"{path}: its feature columns are {', '.join(names)}; the training file's are "
                        f"{', '.join(columns)}")
    values: list[list[float]] = []
    labels: list[str] = []
    lines: list[int] = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: {len(row)} cells, the header has {len(header)}")
        labels.append(_label(row[at], path, line, label))
        lines.append(line)
        values.append([_number(row[i], path, line, header[i]) for i in features])
    if not values:
        raise DataError(f"{path}: no rows after the header")
    return Table(torch.tensor(values, dtype=torch.float32), labels, names, lines)


def _number(cell: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"{path}:{line}: column {column!r} holds {cell.strip()!r}, not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{path}:{line}: column {column!r} holds {cell.strip()!r}, not a finite number")
    if abs(value) > FLOAT32_MAX:
        raise DataError(f"{path}:{line}: column {column!r} holds {cell.strip()!r}, beyond the float32 range the "
                        f"features are read in (at most {FLOAT32_MAX:.4g} in size); rescale the column")
    return value


def _label(cell: str, path: Path, line: int, column: str) -> str:
    """A label cell, stripped; a DataError for one holding a control character (a NUL byte, ...)."""
    text = cell.strip()
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise DataError(f"{path}:{line}: the label {text!r} in column {column!r} holds the control character "
                        f"{bad!r}; labels are printable text")
    return text


def class_names(table: Table, path: Path) -> list[str]:
    """The distinct non-empty label cells of ``table``, sorted (numerically when every one is an
    integer); a DataError naming the line of a label that differs from another only by case ('Pos'
    and 'pos': one class or two?), or when fewer than two classes are labeled."""
    counts = collections.Counter(c for c in table.labels if c)
    names = sorted(counts)
    spellings: dict[str, list[str]] = {}
    for name in names:
        spellings.setdefault(name.casefold(), []).append(name)
    for same in spellings.values():
        if len(same) > 1:
            usual, odd = sorted(same, key=lambda name: (-counts[name], name))[:2]
            line = table.lines[table.labels.index(odd)]
            raise DataError(f"{path}:{line}: the label {odd!r} differs from the label {usual!r} only by case; write "
                            f"each class's label one way")
    if len(names) == 1:
        raise DataError(f"{path}: one class only ({names[0]!r}); a classifier needs at least two classes")
    try:
        return sorted(names, key=int)
    except ValueError:
        return names


def encode_labels(cells: Sequence[str], classes: list[str], path: Path) -> Tensor:
    """Label cells as class indices (-1 for an empty cell); a class outside ``classes`` is an error."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({c for c in cells if c and c not in index})
    if unknown:
        raise DataError(f"{path}: label {unknown[0]!r} is not one of the training file's classes "
                        f"({', '.join(classes)})")
    return torch.tensor([index[c] if c else UNLABELED for c in cells], dtype=torch.int64)
