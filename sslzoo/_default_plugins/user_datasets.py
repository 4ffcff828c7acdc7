"""Datasets from a user's own files: a folder of images (torchvision's ``ImageFolder`` layout plus a
folder of unlabeled images), ``.npz`` arrays, CSV features, and torchvision's on-disk FashionMNIST,
KMNIST and CIFAR-10.

Each reads its files once into tensors (a folder of images and a CSV file through the on-disk
:mod:`~sslzoo._datasets.tensor_cache`), standardizes its inputs with the training set's mean and standard
deviation per channel (per feature for CSV features), and names its classes. Training samples
without a label (``-1``) are for a person to label; a test split without labels allows labeling
work but no accuracy.
"""

from __future__ import annotations

import dataclasses
import mmap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from sslzoo._contract.dataset import Arrays, Dataset
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._datasets import tensor_cache
from sslzoo._datasets.imagefolder import list_images, read_images
from sslzoo._datasets.tabular import class_names, data_file, encode_labels, npz_is_images, read_csv, read_npz
from sslzoo._datasets.vision import download, read_cifar10, read_idx_set
from sslzoo.errors import DataError, OptionError

IMAGE_TRAINING = {"epochs": 30, "batch_size": 32, "lr": 1e-3, "optimizer": "adam", "momentum": 0.9,
                  "weight_decay": 0.0}
FEATURE_TRAINING = {"epochs": 100, "batch_size": 64, "lr": 1e-3, "optimizer": "adam", "momentum": 0.9,
                    "weight_decay": 0.0}
TEST_SEED = 0
"""The seed of the draw that ``test_fraction`` holds out: one test split for every run's seed."""
STATS_CHUNK = 4096
"""Rows of the training set per chunk of the statistics pass, at most ..."""
STATS_ELEMENTS = 2**22
"""... and at most this many elements (32 MB as float64): a chunk of 4096 photos would be gigabytes."""


def _test_fraction(**meta: Any) -> Any:
    return field(default=0.0, metadata={"min": 0.0, "max": 0.9, "help": "hold out this fraction of each class's "
                                        "labeled training samples as the labeled test split (the same draw for every "
                                        "seed), for a dataset without one", **meta})


def hold_out_test(arrays: Arrays, fraction: float) -> Arrays:
    """``arrays`` with ``fraction`` of each class's labeled training samples moved to the test split
    (a seeded draw, the same for every run; at least one sample of each class stays for training)."""
    if not fraction:
        return arrays
    if arrays.y_test.numel():
        raise OptionError(f"test_fraction={fraction} holds out a test split from the training samples, but this "
                          f"dataset has a test split already; leave test_fraction at 0")
    g = torch.Generator().manual_seed(TEST_SEED)
    test = []
    for c in arrays.y_train[arrays.y_train >= 0].unique().tolist():
        members = (arrays.y_train == c).nonzero().flatten()
        k = min(round(fraction * members.numel()), members.numel() - 1)
        test.append(members[torch.randperm(members.numel(), generator=g)[:k]])
    held = torch.sort(torch.cat(test)).values
    keep = torch.ones(arrays.y_train.numel(), dtype=torch.bool)
    keep[held] = False
    names = arrays.train_names
    return dataclasses.replace(
        arrays, x_train=arrays.x_train[keep], y_train=arrays.y_train[keep], x_test=arrays.x_train[held],
        y_test=arrays.y_train[held], train_names=tuple(n for n, k in zip(names, keep.tolist()) if k),
        test_names=tuple(names[i] for i in held.tolist()) if names else ())


class Standardized(Dataset):
    """A dataset whose inputs are standardized with its training set's mean and standard deviation
    per channel (images, (N, C, H, W)) or per feature ((N, D)), measured when it loads."""

    def load(self, seed: int) -> Arrays:
        arrays = self.read()
        x = arrays.x_train
        dims = (0, 2, 3) if x.dim() == 4 else (0,)
        total = torch.zeros(x.shape[1], dtype=torch.float64)
        squares = torch.zeros(x.shape[1], dtype=torch.float64)
        source = tensor_cache.source_of(x)  # a cached folder: read through a mapping whose pages go back
        rows, mapping = source.open() if source is not None else (x, None)
        step = min(STATS_CHUNK, max(1, STATS_ELEMENTS // max(1, x[:1].numel())))
        for start in range(0, x.shape[0], step):  # chunks: a float64 copy of every image would not fit
            chunk = rows[start:start + step].to(torch.float64)
            total += chunk.sum(dims)
            squares += (chunk * chunk).sum(dims)
            if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
                mapping.madvise(mmap.MADV_DONTNEED)  # the pages read stay in the page cache, not in this process
        count = x.numel() // max(1, x.shape[1])
        mean = total / max(1, count)
        std = (squares / max(1, count) - mean * mean).clamp_min(0).sqrt()
        shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
        self._mean = mean.float().view(shape)
        self._std = torch.where(std > 1e-6, std, torch.ones_like(std)).float().view(shape)
        return arrays

    def read(self) -> Arrays:
        """The raw tensors (the inputs before standardization)."""
        raise NotImplementedError

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "_mean"):
            raise DataError(f"dataset {self.name!r}: normalize needs the training set's statistics: load it first")
        return (x.float() - self._mean.to(x.device)) / self._std.to(x.device)


def _required(value: str | None, dataset: str, key: str, what: str) -> str:
    if not value:
        raise OptionError(f"dataset {dataset!r} needs -d {key}=PATH ({what})")
    return value


# -- a folder of images -----------------------------------------------------------------------------
@dataclass
class ImageFolderOptions:
    root: str | None = field(default=None, metadata={
        "help": "the labeled images, one folder per class: ROOT/CLASS/IMAGE (torchvision's ImageFolder layout)"})
    unlabeled: str | None = field(default=None, metadata={
        "help": "a folder of unlabeled images (any layout below it; it may lie inside root)"})
    test: str | None = field(default=None, metadata={
        "help": "test images: one folder per class (labeled), or the images alone (unlabeled: no accuracy)"})
    test_fraction: float = _test_fraction()
    channels: Literal["auto", "grey", "rgb"] = field(default="auto", metadata={
        "help": "grey (1 channel) or rgb (3); auto: grey when no image has colour"})
    size: int = field(default=0, metadata={
        "min": 0, "help": "resize every image to SIZE x SIZE pixels (0: keep; the images must then share one size)"})


class ImageFolder(Standardized):
    """A folder of the user's images: labeled ones in class folders, unlabeled ones beside them."""

    name = "imagefolder"
    summary = "your images: ROOT/CLASS/IMAGE labeled (-d root=DIR), -d unlabeled=DIR, -d test=DIR"
    default_model = "cnn"
    train_defaults = IMAGE_TRAINING
    test_help = "-d test=DIR (one folder per class) or -d test_fraction=0.2"
    Options = ImageFolderOptions
    labels_given = True  # a person's labels: a labeling session starts from them

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        _required(self.options.root, self.name, "root", "a folder with one folder of images per class")

    def read(self) -> Arrays:
        o = self.options
        listing = list_images(o.root, o.unlabeled, o.test)
        files = listing.files()
        identity = {"root": str(Path(o.root).resolve()), "unlabeled": o.unlabeled and str(Path(o.unlabeled).resolve()),
                    "test": o.test and str(Path(o.test).resolve()), "channels": o.channels, "size": o.size}
        data = tensor_cache.cached("imagefolder", identity, files,
                                   lambda: {"x": read_images(files, o.channels, o.size)})
        n = len(listing.train)
        arrays = Arrays(data["x"][:n], torch.tensor(listing.train_labels, dtype=torch.int64), data["x"][n:],
                        torch.tensor(listing.test_labels, dtype=torch.int64), tuple(listing.classes),
                        tuple(map(str, listing.train)), tuple(map(str, listing.test)))
        return hold_out_test(arrays, o.test_fraction)


# -- arrays in a .npz file --------------------------------------------------------------------------
@dataclass
class NpzOptions:
    path: str | None = field(default=None, metadata={
        "help": "the .npz file: x, y (-1: no label), optionally x_test, y_test and classes"})
    test_fraction: float = _test_fraction()


class Npz(Standardized):
    """Arrays in a NumPy ``.npz`` file: features or images, labels with -1 for none."""

    name = "npz"
    summary = "your arrays: a .npz file with x, y (-1: no label), optionally x_test, y_test, classes (-d path=FILE)"
    default_model = "mlp"
    train_defaults = FEATURE_TRAINING
    test_help = "x_test and y_test in the file, or -d test_fraction=0.2"
    Options = NpzOptions
    labels_given = True  # a person's labels: a labeling session starts from them

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.path = data_file(_required(self.options.path, self.name, "path", "a .npz file"), ".npz file")
        if npz_is_images(self.path):  # images get the image model and schedule
            self.default_model = "cnn"  # type: ignore[misc]  # per instance: the file decides
            self.train_defaults = IMAGE_TRAINING  # type: ignore[misc]

    def read(self) -> Arrays:
        got = read_npz(self.path)
        names = tuple(f"{self.path}[{i}]" for i in range(len(got.y)))
        test_names = tuple(f"{self.path}:x_test[{i}]" for i in range(len(got.y_test)))
        arrays = Arrays(got.x, got.y, got.x_test, got.y_test, tuple(got.classes), names, test_names)
        return hold_out_test(arrays, self.options.test_fraction)


# -- a CSV file of features -------------------------------------------------------------------------
@dataclass
class CsvOptions:
    path: str | None = field(default=None, metadata={
        "help": "the CSV file: a header row, numeric feature columns and a label column (empty: no label)"})
    label: str = field(default="label", metadata={"help": "the label column"})
    ignore: tuple[str, ...] = field(default=(), metadata={"help": "columns that are not features (an id, a name)"})
    test: str | None = field(default=None, metadata={
        "help": "a CSV file of test rows with the same columns (labels all given, or all empty: no accuracy)"})
    test_fraction: float = _test_fraction()


class Csv(Standardized):
    """Rows of numeric features in a CSV file, with a label column."""

    name = "csv"
    summary = "your table: a CSV file of numeric features and a label column, empty for none (-d path=FILE)"
    default_model = "mlp"
    train_defaults = FEATURE_TRAINING
    test_help = "-d test=FILE (a CSV file with the same columns) or -d test_fraction=0.2"
    Options = CsvOptions
    labels_given = True  # a person's labels: a labeling session starts from them

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.path = data_file(_required(self.options.path, self.name, "path", "a CSV file"), "CSV file")
        self.test_path = data_file(self.options.test, "test CSV file") if self.options.test else None

    def read(self) -> Arrays:
        o = self.options
        files = [self.path] + ([self.test_path] if self.test_path else [])
        identity = {"files": [str(f) for f in files], "label": o.label, "ignore": list(o.ignore)}
        data = tensor_cache.cached("csv", identity, files, self._parse)
        names = tuple(f"{self.path}:{line}" for line in data["lines"])
        test_names = tuple(f"{self.test_path}:{line}" for line in data["test_lines"])
        arrays = Arrays(data["x"], data["y"], data["x_test"], data["y_test"], tuple(data["classes"]), names, test_names)
        return hold_out_test(arrays, o.test_fraction)

    def _parse(self) -> dict[str, Any]:
        o = self.options
        table = read_csv(self.path, o.label, o.ignore)
        classes = class_names(table, self.path)
        if not classes:
            raise DataError(f"{self.path}: column {o.label!r} holds no label at all; label at least one row of "
                            f"each class")
        y = encode_labels(table.labels, classes, self.path)
        if self.test_path is None:
            x_test, y_test, test_lines = table.x[:0], y[:0], []
        else:
            test = read_csv(self.test_path, o.label, o.ignore, columns=table.columns)
            y_test = encode_labels(test.labels, classes, self.test_path)
            given = int((y_test >= 0).sum())
            if 0 < given < y_test.numel():
                raise DataError(f"{self.test_path}: {given} of its {y_test.numel()} rows have a label; a test file "
                                f"has every label (accuracy) or none (labeling only)")
            x_test, test_lines = test.x, test.lines
        return {"x": table.x, "y": y, "x_test": x_test, "y_test": y_test, "classes": classes,
                "lines": table.lines, "test_lines": test_lines}


# -- torchvision's on-disk datasets -----------------------------------------------------------------
@dataclass
class TorchvisionOptions:
    data_dir: str | None = field(default=None, metadata={
        "help": "the torchvision root holding the dataset's files (--data-dir DIR)"})
    download: bool = field(default=False, metadata={
        "help": "download the files into data_dir with torchvision first when they are missing (needs a network)"})
    n_train: int = field(default=0, metadata={"min": 0, "help": "keep only the first N training images (0: all)"})
    n_test: int = field(default=0, metadata={"min": 0, "help": "keep only the first N test images (0: all)"})


class OnDisk(Standardized):
    """A torchvision dataset in a user's torchvision root (``--data-dir``), never downloaded unless asked."""

    torchvision_class = ""
    num_classes = 10
    default_model = "cnn"
    train_defaults = IMAGE_TRAINING
    Options = TorchvisionOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if not self.options.data_dir:
            raise OptionError(f"dataset {self.name!r} needs --data-dir DIR: a torchvision root holding "
                              f"{self.torchvision_class} (add -d download=true to fetch it there)")

    def read(self) -> Arrays:
        root = Path(self.options.data_dir).expanduser()
        try:
            tensors = self.read_root(root)
        except DataError:
            if not self.options.download:
                raise
            download(self.torchvision_class, root)
            tensors = self.read_root(root)
        x_train, y_train, x_test, y_test, classes = tensors
        n_train, n_test = self.options.n_train or len(y_train), self.options.n_test or len(y_test)
        return Arrays(x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test], classes)

    def read_root(self, root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
        """Training and test images, their labels and the class names, from the torchvision root."""
        return read_idx_set(self.torchvision_class, root)


class FashionMnist(OnDisk):
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): Zalando's clothing images in MNIST's format."""

    name = "fashion_mnist"
    summary = "Fashion-MNIST, 60000 train / 10000 test, 28x28 grey, from --data-dir DIR/FashionMNIST/raw/"
    torchvision_class = "FashionMNIST"


class Kmnist(OnDisk):
    """Kuzushiji-MNIST (Clanuwat et al. 2018): cursive Japanese characters in MNIST's format."""

    name = "kmnist"
    summary = "Kuzushiji-MNIST, 60000 train / 10000 test, 28x28 grey, from --data-dir DIR/KMNIST/raw/"
    torchvision_class = "KMNIST"


class Cifar10(OnDisk):
    """CIFAR-10 (Krizhevsky 2009): 32x32 colour images of 10 classes."""

    name = "cifar10"
    summary = "CIFAR-10, 50000 train / 10000 test, 32x32 RGB, from --data-dir DIR/cifar-10-batches-py/"
    torchvision_class = "CIFAR10"

    def read_root(self, root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, tuple[str, ...]]:
        return read_cifar10(root)


@hookimpl
def register_datasets(register: Callable[[type], None]) -> None:
    for dataset in (ImageFolder, Npz, Csv, FashionMnist, Kmnist, Cifar10):
        register(dataset)

