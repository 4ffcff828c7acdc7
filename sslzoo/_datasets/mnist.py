"""Bundled MNIST (LeCun et al. 1998): checksum-verified, read with torchvision's IDX reader.

The four canonical gzip'd IDX files ship inside the package (``sslzoo/data/mnist``) with a
``SHA256SUMS`` file beside them, so sslzoo works offline and never downloads anything.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from sslzoo.errors import ChecksumError, DataError

BUNDLED_DIR: Path = Path(__file__).resolve().parents[1] / "data" / "mnist"
"""The package's own copy of the MNIST files."""

FILES: tuple[str, str, str, str] = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
"""The four gzip'd IDX files, in the order (train images, train labels, test images, test labels)."""

SUMS_FILE = "SHA256SUMS"
NEVER_DOWNLOADS = "sslzoo never downloads, leave data_dir unset to use the bundled copy"

MnistTensors = tuple[Tensor, Tensor, Tensor, Tensor]

# (resolved dir, per-file (size, mtime_ns)) -> tensors; the stat part makes a replaced file reload.
_CACHE: dict[tuple[str, tuple[tuple[int, int], ...]], MnistTensors] = {}


def load_mnist(data_dir: str | Path | None = None, bundled_dir: Path = BUNDLED_DIR) -> MnistTensors:
    """Load MNIST as ``(x_train, y_train, x_test, y_test)`` CPU tensors.

    ``x_*`` are uint8 of shape (N, 1, 28, 28) with N = 60000 / 10000, ``y_*`` int64 of shape (N,).
    With ``data_dir=None`` the bundled files in ``bundled_dir`` are checksum-verified and read;
    the result is cached in-process per directory and the *same* tensors are returned on every
    call, so callers must not modify them in place (``.clone()`` first if needed).
    With ``data_dir`` given it is read as a torchvision root (``<data_dir>/MNIST/raw/...``);
    nothing is ever downloaded.
    """
    if data_dir is not None:
        return read_torchvision_root(Path(data_dir), "MNIST", NEVER_DOWNLOADS)
    return _load_bundled(Path(bundled_dir))


def _load_bundled(bundled_dir: Path) -> MnistTensors:
    directory = bundled_dir.resolve()
    paths = [directory / name for name in FILES]
    for path in [*paths, directory / SUMS_FILE]:
        if not path.is_file():
            raise DataError(
                f"MNIST file {path} is missing; the bundled data is incomplete, reinstall sslzoo"
            )
    stats = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    key = (str(directory), stats)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached

    expected = _read_sums(directory / SUMS_FILE)
    for path in paths:
        want = expected.get(path.name)
        if want is None:
            raise DataError(f"{directory / SUMS_FILE} has no checksum for {path.name}; reinstall sslzoo")
        got = _sha256(path)
        if got != want:
            raise ChecksumError(
                f"checksum mismatch for {path}: expected sha256 {want}, got {got}; "
                "the bundled file is corrupt, reinstall sslzoo"
            )

    with tempfile.TemporaryDirectory(prefix="sslzoo-mnist-") as tmp:
        raw = []
        for path in paths:
            out = Path(tmp) / path.name[: -len(".gz")]
            try:
                with gzip.open(path, "rb") as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as exc:  # checksum passed, so only a broken SHA256SUMS gets here
                raise DataError(f"cannot decompress MNIST file {path}: {exc}") from exc
            raw.append(out)
        tensors = _read_idx(raw, where=directory, names=[str(p) for p in paths])

    _CACHE[key] = tensors
    return tensors


def _read_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            digest, name = parts
            sums[name.lstrip("*")] = digest.lower()
    return sums


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: (type byte, dimensions) of an IDX file of MNIST images and of MNIST labels.
IMAGES, LABELS = (0x08, 3), (0x08, 1)
NUM_CLASSES = 10


def check_idx(path: Path, kind: tuple[int, int], name: str | None = None, dataset: str = "MNIST") -> int:
    """Check that ``path`` is a whole uncompressed IDX file of images or labels (``kind``) of MNIST or
    of a set in its format (``dataset``: FashionMNIST, KMNIST): its header (magic number, 28x28
    images) and its length; returns the number of items. Errors name the file (``name`` when
    ``path`` is a temporary copy) and the problem."""
    where = name or str(path)
    what = "images" if kind == IMAGES else "labels"
    dtype, ndim = kind
    header = 4 + 4 * ndim
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(header)
    except OSError as exc:
        raise DataError(f"{dataset} file {where}: cannot read: {exc.strerror or exc}") from None
    if len(head) < header:
        raise DataError(f"{dataset} file {where} is truncated: {size} bytes, shorter than the {header}-byte header of "
                        f"an IDX {what} file")
    magic = int.from_bytes(head[:4], "big")
    if head[:2] != b"\0\0" or head[2] != dtype or head[3] != ndim:
        raise DataError(f"{dataset} file {where} has a corrupted header: magic number {magic:#010x}, expected "
                        f"{(dtype << 8) | ndim:#010x} for a file of {what}")
    dims = [int.from_bytes(head[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    if kind == IMAGES and dims[1:] != [28, 28]:
        raise DataError(f"{dataset} file {where} has a corrupted header: images of {dims[1]}x{dims[2]} pixels, "
                        f"expected 28x28")
    expected = header + math.prod(dims)
    if size < expected:
        raise DataError(f"{dataset} file {where} is truncated: {size} bytes, its header announces {dims[0]} {what} "
                        f"({expected} bytes)")
    if size > expected:
        raise DataError(f"{dataset} file {where} has {size - expected} bytes after the {dims[0]} {what} its header "
                        f"announces; not an IDX file")
    return dims[0]


def _read_idx(paths: Sequence[Path], where: Path, names: Sequence[str] | None = None,
              dataset: str = "MNIST") -> MnistTensors:
    """Check and read the four IDX files of ``dataset`` (training images and labels, test images and
    labels; ``names``: what to call them in errors) with torchvision's reader."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    train_x, train_y, test_x, test_y = paths
    shown = names or [str(p) for p in paths]
    for images, labels, image_name, label_name in ((train_x, train_y, shown[0], shown[1]),
                                                   (test_x, test_y, shown[2], shown[3])):
        n_images = check_idx(images, IMAGES, image_name, dataset)
        n_labels = check_idx(labels, LABELS, label_name, dataset)
        if n_images != n_labels:
            raise DataError(f"{dataset} files {image_name} and {label_name} disagree: {n_images} images, "
                            f"{n_labels} labels")
    try:
        tensors = (read_image_file(str(train_x)), read_label_file(str(train_y)),
                   read_image_file(str(test_x)), read_label_file(str(test_y)))
    except (AssertionError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"{dataset} files in {where} are not valid IDX files: {type(exc).__name__}: {exc}") from exc
    for labels, label_name in ((tensors[1], shown[1]), (tensors[3], shown[3])):
        bad = torch.nonzero((labels < 0) | (labels >= NUM_CLASSES)).flatten()
        if bad.numel():
            i = int(bad[0])
            more = f" and {bad.numel() - 1} more outside 0-{NUM_CLASSES - 1}" if bad.numel() > 1 else ""
            raise DataError(f"{dataset} file {label_name} has label {int(labels[i])} at index {i}{more}; {dataset} "
                            f"labels are the {'digits' if dataset == 'MNIST' else 'classes'} 0-{NUM_CLASSES - 1}")
    return _shape(*tensors, where, dataset)


def read_torchvision_root(root: Path, dataset: str, hint: str) -> MnistTensors:
    """MNIST, or a set in its format (FashionMNIST, KMNIST), from a torchvision root:
    ``root/DATASET/raw/`` holding the four uncompressed IDX files; ``hint`` ends the error of a
    root without them."""
    raw = root / dataset / "raw"
    names = tuple(name[: -len(".gz")] for name in FILES)
    layout = (f"expected a torchvision root laid out as {root}/{dataset}/raw/{', '.join(names[:3])} and {names[3]} "
              f"(uncompressed); {hint}")
    missing = [name for name in names if not (raw / name).is_file()]
    if missing:
        raise DataError(f"no {dataset} found in {root} (missing {', '.join(missing)}): {layout}")
    return _read_idx([raw / name for name in names], where=root, dataset=dataset)


def _shape(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, where: Path,
           dataset: str = "MNIST") -> MnistTensors:
    out = (
        x_train.to(torch.uint8).unsqueeze(1),
        y_train.to(torch.int64),
        x_test.to(torch.uint8).unsqueeze(1),
        y_test.to(torch.int64),
    )
    xs, ys = (out[0], out[2]), (out[1], out[3])
    for x, y in zip(xs, ys):
        if x.shape[1:] != (1, 28, 28) or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(
                f"{dataset} in {where} has unexpected shapes: images {tuple(x.shape)}, labels {tuple(y.shape)}"
            )
    return out
