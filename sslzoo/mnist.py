"""Bundled MNIST (LeCun et al. 1998): checksum-verified, read with torchvision's IDX reader.

The four canonical gzip'd IDX files ship inside the package (``sslzoo/data/mnist``) with a
``SHA256SUMS`` file beside them, so sslzoo works offline and never downloads anything.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from sslzoo.errors import ChecksumError, DataError

BUNDLED_DIR: Path = Path(__file__).resolve().parent / "data" / "mnist"
"""The package's own copy of the MNIST files."""

FILES: tuple[str, str, str, str] = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
"""The four gzip'd IDX files, in the order (train images, train labels, test images, test labels)."""

SUMS_FILE = "SHA256SUMS"

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
        return _load_torchvision_root(Path(data_dir))
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
        tensors = _read_idx(raw[0], raw[1], raw[2], raw[3], where=directory)

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


def _read_idx(train_x: Path, train_y: Path, test_x: Path, test_y: Path, where: Path) -> MnistTensors:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    try:
        x_train, y_train = read_image_file(str(train_x)), read_label_file(str(train_y))
        x_test, y_test = read_image_file(str(test_x)), read_label_file(str(test_y))
    except (AssertionError, KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise DataError(f"MNIST files in {where} are not valid IDX files: {exc}") from exc
    return _shape(x_train, y_train, x_test, y_test, where)


def _load_torchvision_root(root: Path) -> MnistTensors:
    from torchvision.datasets import MNIST

    layout = (
        f"expected a torchvision root laid out as {root}/MNIST/raw/train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
        "(uncompressed); sslzoo never downloads, leave data_dir unset to use the bundled copy"
    )
    try:
        train = MNIST(root=str(root), train=True, download=False)
        test = MNIST(root=str(root), train=False, download=False)
    except RuntimeError as exc:
        if "not found" in str(exc).lower():
            raise DataError(f"no MNIST found in {root}: {layout}") from exc
        raise DataError(f"cannot read MNIST from {root}: {exc}; {layout}") from exc
    except (OSError, AssertionError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"cannot read MNIST from {root}: {exc}; {layout}") from exc
    return _shape(train.data, train.targets, test.data, test.targets, root)


def _shape(x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, where: Path) -> MnistTensors:
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
                f"MNIST in {where} has unexpected shapes: images {tuple(x.shape)}, labels {tuple(y.shape)}"
            )
    return out
