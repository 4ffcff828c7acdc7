"""A folder of a user's images as tensors: torchvision's ``ImageFolder`` layout (one folder per
class) for the labeled images, a folder of unlabeled images, and an optional test folder.

Images are found as torchvision's ``ImageFolder`` finds them (its extensions, any depth below the
class folder), hidden files and folders (``.name``) aside, and decoded as its loader decodes them
(Pillow, into tensors with torchvision's ``pil_to_tensor``), keeping grey images grey. A 16-bit or
32-bit integer image and a float image in [0, 1] are scaled to 8 bits from their real depth, never
clipped. A link to a folder is followed unless it leads back into the dataset's folders (or to one
already read): such a link is left out with a :class:`~sslzoo.errors.DataWarning`, so no image is
read twice and no loop is walked. Every mistake in the layout or the files is a
:class:`~sslzoo.errors.DataError` naming the folder or file.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from sslzoo._contract.dataset import UNLABELED
from sslzoo.errors import DataError, DataWarning

Channels = Literal["auto", "grey", "rgb"]
GREY_MODES = ("L", "LA", "1", "I", "F")
"""Pillow's modes that :func:`decode` reads as grey (``I;16`` and the other ``I;`` modes too)."""


def image_extensions() -> tuple[str, ...]:
    """The file endings torchvision's ``ImageFolder`` takes as images."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


@dataclass
class Listing:
    """The image files of a dataset, in the order of its samples, and their labels."""

    classes: list[str]
    train: list[Path]
    train_labels: list[int]
    test: list[Path]
    test_labels: list[int]

    def files(self) -> list[Path]:
        return self.train + self.test


def _hidden(name: str) -> bool:
    return name.startswith(".")


def images_in(directory: Path, trees: Iterable[Path] = ()) -> list[Path]:
    """The image files at any depth below ``directory``, sorted, hidden files and folders left out. A
    link to a folder inside ``directory`` or ``trees`` (the dataset's folders), or holding one of them,
    or inside a folder it already read, is not followed (a :class:`~sslzoo.errors.DataWarning` says so)."""
    suffixes = image_extensions()
    read = [directory.resolve(), *(tree.resolve() for tree in trees)]
    found = []
    for parent, folders, names in os.walk(directory, followlinks=True):
        kept = []
        for name in sorted(f for f in folders if not _hidden(f)):
            path = Path(parent) / name
            if path.is_symlink():
                real = path.resolve()
                inside = next((t for t in read if real.is_relative_to(t)), None)
                around = next((t for t in read if t.is_relative_to(real)), None)
                if inside or around:
                    where = f"which leads back into {inside}" if inside else f"which holds {around}"
                    warnings.warn(DataWarning(f"{path}: a link to {real}, {where}; not followed (its images would be "
                                              f"read twice, or without end)"), stacklevel=2)
                    continue
                read.append(real)
            kept.append(name)
        folders[:] = kept
        found += [Path(parent) / n for n in names if not _hidden(n) and n.lower().endswith(suffixes)]
    return sorted(found)


def _folder(path: str, what: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"{what} {folder}: no such directory")
    if not folder.is_dir():
        raise DataError(f"{what} {folder}: not a directory")
    return folder.resolve()


def _loose_images(folder: Path) -> list[Path]:
    suffixes = image_extensions()
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not _hidden(p.name) and p.name.lower().endswith(suffixes))


def _class_folders(folder: Path, skip: set[Path]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name) and p.resolve() not in skip)


def list_images(root: str, unlabeled: str | None = None, test: str | None = None) -> Listing:
    """The labeled images of ``root`` (``root/CLASS/...``), then the unlabeled ones of ``unlabeled``
    (any layout) as training samples; the images of ``test`` as test samples, labeled when ``test``
    has class folders, unlabeled when it holds the images directly. ``unlabeled`` and ``test`` may
    lie inside ``root``: they are then not classes."""
    top = _folder(root, "image folder")
    extra = {_folder(p, what) for p, what in ((unlabeled, "unlabeled folder"), (test, "test folder")) if p}
    class_dirs = _class_folders(top, extra)
    layout = f"the layout is one folder per class: {top}/CLASS/IMAGE"
    loose = _loose_images(top)
    if loose:
        where = "beside the class folders" if class_dirs else "and no class folders"
        raise DataError(f"{loose[0]}: an image directly in {top} {where}; {layout} (unlabeled images go in "
                        f"their own folder: -d unlabeled=DIR)")
    if not class_dirs:
        raise DataError(f"{top} has no class folders; {layout}")
    classes = [d.name for d in class_dirs]
    if len(classes) < 2:
        raise DataError(f"{top} has one class folder only ({classes[0]!r}); a classifier needs at least two classes: "
                        f"{layout}")
    trees = [top, *extra]
    train: list[Path] = []
    labels: list[int] = []
    for index, folder in enumerate(class_dirs):
        found = images_in(folder, trees)
        if not found:
            raise DataError(f"class {folder.name!r} has no images: {folder} holds no image files "
                            f"({', '.join(image_extensions())})")
        train += found
        labels += [index] * len(found)
    if unlabeled:
        folder = _folder(unlabeled, "unlabeled folder")
        found = images_in(folder, trees)
        if not found:
            raise DataError(f"unlabeled folder {folder} holds no image files ({', '.join(image_extensions())})")
        train += found
        labels += [UNLABELED] * len(found)
    test_files, test_labels = _test_images(_folder(test, "test folder"), classes, trees) if test else ([], [])
    return Listing(classes, train, labels, test_files, test_labels)


def _test_images(folder: Path, classes: list[str], trees: list[Path]) -> tuple[list[Path], list[int]]:
    """A test folder: class folders named like the training classes (labeled) or images only (unlabeled)."""
    class_dirs = _class_folders(folder, set())
    loose = _loose_images(folder)
    if class_dirs and loose:
        raise DataError(f"{loose[0]}: an image directly in the test folder {folder} beside its class folders; "
                        f"put labeled test images in their class's folder ({folder}/CLASS/IMAGE), or give a "
                        f"folder of unlabeled test images only")
    if not class_dirs:
        if not loose:
            raise DataError(f"test folder {folder} holds no image files ({', '.join(image_extensions())})")
        found = images_in(folder, trees)
        return found, [UNLABELED] * len(found)
    files: list[Path] = []
    labels: list[int] = []
    for class_dir in class_dirs:
        if class_dir.name not in classes:
            raise DataError(f"test class folder {class_dir} is not one of the training classes "
                            f"({', '.join(classes)})")
        found = images_in(class_dir, trees)
        if not found:
            raise DataError(f"test class {class_dir.name!r} has no images: {class_dir} holds no image files")
        files += found
        labels += [classes.index(class_dir.name)] * len(found)
    return files, labels


def decode(path: Path) -> Tensor:
    """One image file as a uint8 tensor (channels, height, width); a DataError naming the file when it
    cannot be read or decoded."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    try:
        with Image.open(path) as opened:
            opened.load()
            if opened.mode in ("L", "LA", "RGB", "RGBA"):
                return pil_to_tensor(opened)
            if opened.mode == "1":
                return pil_to_tensor(opened.convert("L"))
            if opened.mode in ("I", "F") or opened.mode.startswith("I;"):
                return _eight_bits(np.asarray(opened), opened.mode, path)
            return pil_to_tensor(opened.convert("RGBA" if "transparency" in opened.info else "RGB"))
    except DataError:
        raise
    except Exception as exc:  # Pillow's decoders raise many kinds of errors: a corrupt file is any of them
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read image {path}: {reason}") from None


def _eight_bits(pixels: np.ndarray, mode: str, path: Path) -> Tensor:
    """A grey image of more than 8 bits as uint8 (1, height, width), scaled from its real depth: 16-bit
    integers (``I;16``, and ``I`` whose values fit 16 bits) from 0-65535, 32-bit ones from 0-(2^32 - 1),
    floats from [0, 1]; a DataError naming the file for values outside that range."""
    values = pixels.astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode == "F":
        top, depth = 1.0, "a float image, read in [0, 1]"
    elif mode.startswith("I;16") or 0 <= low <= high <= 65535:
        top, depth = 65535.0, "a 16-bit image"
    else:
        top, depth = 2.0**32 - 1, "a 32-bit image"
    if not (np.isfinite(values).all() and 0 <= low and high <= top):
        raise DataError(f"cannot read image {path}: {depth} whose values run from {low:g} to {high:g}; its pixels must "
                        f"lie between 0 and {top:g}")
    return torch.from_numpy(np.rint(values * (255.0 / top)).astype(np.uint8)).unsqueeze(0)


def _to_channels(image: Tensor, channels: int) -> Tensor:
    """An image of 1 to 4 channels (grey, grey + alpha, RGB, RGBA) as ``channels`` (1 or 3), alpha dropped."""
    image = image[:1] if image.shape[0] == 2 else image[:3] if image.shape[0] == 4 else image
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1)
    from torchvision.transforms.functional import rgb_to_grayscale

    return rgb_to_grayscale(image)


def _decodes_grey(path: Path) -> bool | None:
    """Whether ``path``'s header names a mode that :func:`decode` reads as grey (None: no readable
    header; decoding it will say why)."""
    from PIL import Image

    try:
        with Image.open(path) as opened:
            mode = opened.mode
    except Exception:  # Pillow raises many kinds of errors for a file that is no image: decode reports it
        return None
    return mode in GREY_MODES or mode.startswith("I;")


def read_images(files: list[Path], channels: Channels = "auto", size: int = 0) -> Tensor:
    """The images as one uint8 tensor (N, C, H, W): grey (C=1) or RGB (C=3; ``auto``: grey when no
    image has colour), every image ``size`` x ``size`` pixels when ``size`` > 0 (resized), else all
    of one size (a DataError naming two files of different sizes otherwise).

    Each image is decoded once, into its place in the tensor (no second copy of the images): with
    ``auto``, the files' headers say beforehand whether any has colour (read again, with the answer
    the decoded images give, in the rare case that a header misleads)."""
    wanted = {"grey": 1, "rgb": 3}.get(channels) or (1 if all(_decodes_grey(p) is not False for p in files) else 3)
    images, colour = _decoded(files, wanted, size)
    if channels == "auto" and colour != (wanted == 3):
        images, _ = _decoded(files, 3 if colour else 1, size)
    return images


def _decoded(files: list[Path], channels: int, size: int) -> tuple[Tensor, bool]:
    """The images as one uint8 tensor of ``channels`` (see :func:`read_images`), and whether any of them
    has colour."""
    out: Tensor | None = None
    colour = False
    for i, path in enumerate(files):
        image = decode(path)
        colour = colour or image.shape[0] > 2
        image = _to_channels(image, channels)
        if size:
            from torchvision.transforms.functional import resize

            image = resize(image, [size, size], antialias=True)
        if out is None:
            out = torch.empty(len(files), channels, *image.shape[1:], dtype=torch.uint8)
        elif image.shape[1:] != out.shape[2:]:
            raise DataError(f"mixed image sizes: {files[0]} is {out.shape[3]}x{out.shape[2]} pixels but {path} is "
                            f"{image.shape[2]}x{image.shape[1]} (width x height); every image must have the same "
                            f"size: resize them, or give -d size=N to resize each to NxN")
        out[i] = image
    if out is None:
        return torch.zeros(0, channels, max(size, 1), max(size, 1), dtype=torch.uint8), colour
    return out, colour
