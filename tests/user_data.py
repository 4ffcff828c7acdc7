"""Small user datasets written by the tests: a folder of images in the ImageFolder layout, torchvision's
on-disk layouts (FashionMNIST's IDX files, CIFAR-10's pickles). Nothing is downloaded."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch


def shape_image(kind: int, generator: torch.Generator, size: int = 16, channels: int = 1) -> torch.Tensor:
    """A noisy uint8 image of class ``kind``: 0 a filled square, 1 a cross."""
    image = (torch.rand(channels, size, size, generator=generator) * 60).to(torch.uint8)
    low, high = size // 4, size - size // 4
    middle = slice(size // 2 - 1, size // 2 + 1)
    if kind == 0:
        image[:, low:high, low:high] += 150
    else:
        image[:, :, middle] += 150
        image[:, middle, :] += 150
    return image


def write_png(path: Path, image: torch.Tensor) -> Path:
    """``image`` (C, H, W) uint8 as a PNG file."""
    from torchvision.transforms.functional import to_pil_image

    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil_image(image).save(path)
    return path


def image_folder(root: Path, per_class: int = 12, unlabeled: int = 16, test_per_class: int = 6,
                 classes: tuple[str, ...] = ("square", "cross"), seed: int = 0) -> Path:
    """``root/photos/CLASS/i.png`` (labeled), ``root/photos/unlabeled/u*.png`` and ``root/test/CLASS/*.png``."""
    g = torch.Generator().manual_seed(seed)
    for kind, name in enumerate(classes):
        for i in range(per_class):
            write_png(root / "photos" / name / f"{i:03d}.png", shape_image(kind % 2, g))
        for i in range(test_per_class):
            write_png(root / "test" / name / f"{i:03d}.png", shape_image(kind % 2, g))
    for i in range(unlabeled):
        write_png(root / "photos" / "unlabeled" / f"u{i:03d}.png", shape_image(i % 2, g))
    return root / "photos"


def _idx(kind: int, dims: list[int], payload: bytes) -> bytes:
    return bytes([0, 0, 8, kind]) + b"".join(d.to_bytes(4, "big") for d in dims) + payload


def idx_root(root: Path, folder: str, n_train: int = 20, n_test: int = 10) -> Path:
    """``root/FOLDER/raw/`` with the four uncompressed IDX files of MNIST's format (28x28, classes 0-9)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = (torch.rand(n, 28, 28, generator=g) * 255).to(torch.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(3, [n, 28, 28], images.numpy().tobytes()))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(1, [n], bytes(i % 10 for i in range(n))))
    return root


def cifar10_root(root: Path, per_batch: int = 4, n_test: int = 6) -> Path:
    """``root/cifar-10-batches-py/`` with five small training batches, a test batch and the meta file."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(name: str, n: int) -> None:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))

    for i in range(1, 6):
        batch(f"data_batch_{i}", per_batch)
    batch("test_batch", n_test)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}, protocol=2))
    return root
