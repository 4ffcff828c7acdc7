"""torchvision's on-disk datasets from a user's torchvision root: FashionMNIST and KMNIST (MNIST's
IDX format, read with torchvision's reader) and CIFAR-10 (its Python pickles).

Nothing is downloaded unless asked for (:func:`download`, ``-d download=true``): sslzoo reads the
files a torchvision root already holds. CIFAR-10's pickles are read with an unpickler that builds
NumPy arrays and nothing else, so a file that is not what it claims cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sslzoo._datasets.mnist import read_torchvision_root
from sslzoo.errors import DataError

NEVER_DOWNLOADS = "sslzoo downloads nothing unless asked: add -d download=true to fetch the files into data_dir"


CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR10_META = "batches.meta"


def download(torchvision_class: str, root: Path) -> None:
    """Fetch a torchvision dataset into ``root`` with torchvision's own downloader (needs a network)."""
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, torchvision_class)(str(root), train=True, download=True)
        getattr(torchvision.datasets, torchvision_class)(str(root), train=False, download=True)
    except Exception as exc:  # urllib, tarfile and torchvision's integrity checks each raise their own
        raise DataError(f"cannot download {torchvision_class} into {root}: {exc}") from None


def read_idx_set(torchvision_class: str, root: Path) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[str, ...]]:
    """FashionMNIST or KMNIST (``torchvision_class``) from ``root/FashionMNIST/raw/`` (or ``KMNIST``):
    training and test images (N, 1, 28, 28) uint8, their labels and the class names."""
    import torchvision.datasets

    x_train, y_train, x_test, y_test = read_torchvision_root(root, torchvision_class, NEVER_DOWNLOADS)
    return x_train, y_train, x_test, y_test, tuple(getattr(torchvision.datasets, torchvision_class).classes)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and NumPy arrays; any other class is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}  # bytes pickled by Python 3

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR-10 batch never holds")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, object]:
    try:
        with open(path, "rb") as handle:
            entry = _ArraysOnly(handle, encoding="latin1").load()
    except OSError as exc:
        raise DataError(f"CIFAR-10 file {path}: cannot read: {exc.strerror or exc}") from None
    except Exception as exc:  # a truncated or foreign pickle raises any of several errors
        raise DataError(f"CIFAR-10 file {path} is not a CIFAR-10 batch: {exc}") from None
    if not isinstance(entry, dict):
        raise DataError(f"CIFAR-10 file {path} is not a CIFAR-10 batch: it holds a {type(entry).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in entry.items()}


def _batch(path: Path) -> tuple[Tensor, Tensor]:
    entry = _unpickle(path)
    data, labels = entry.get("data"), entry.get("labels")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DataError(f"CIFAR-10 file {path} is not a CIFAR-10 batch: no data array and labels list")
    labels_array = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels_array.shape != (len(data),):
        raise DataError(f"CIFAR-10 file {path} is not a CIFAR-10 batch: data {data.dtype} {data.shape} and "
                        f"{labels_array.size} labels, expected uint8 (N, 3072) and N labels")
    y = torch.from_numpy(labels_array.astype(np.int64))
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > 9):
        raise DataError(f"CIFAR-10 file {path} has a label outside 0-9")
    return torch.from_numpy(data.copy()).view(-1, 3, 32, 32), y


def read_cifar10(root: Path) -> tuple[Tensor, Tensor, Tensor, Tensor, tuple[str, ...]]:
    """CIFAR-10 from ``root/cifar-10-batches-py/``: training and test images (N, 3, 32, 32) uint8,
    their labels and the class names."""
    folder = root / CIFAR10_FOLDER
    names = (*CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_META)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"no CIFAR-10 found in {root} (missing {', '.join(missing)}): expected a torchvision root "
                        f"laid out as {folder}/{', '.join(CIFAR10_TRAIN)}, {CIFAR10_TEST} and {CIFAR10_META}; "
                        f"{NEVER_DOWNLOADS}")
    parts = [_batch(folder / n) for n in CIFAR10_TRAIN]
    x_test, y_test = _batch(folder / CIFAR10_TEST)
    classes = _unpickle(folder / CIFAR10_META).get("label_names")
    if not isinstance(classes, list) or len(classes) != 10:
        raise DataError(f"CIFAR-10 file {folder / CIFAR10_META} has no list of the 10 label_names")
    return (torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]), x_test, y_test,
            tuple(str(c) for c in classes))
