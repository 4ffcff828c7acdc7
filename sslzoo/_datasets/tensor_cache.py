"""The tensor cache: a dataset read from a user's files once, kept on disk as tensors.

Converting a folder of images (or a large CSV file) takes far longer than reading its tensors
back, so the result is stored in the cache directory (``SSLZOO_CACHE_DIR``, else
``$XDG_CACHE_HOME/sslzoo`` or ``~/.cache/sslzoo``), one file per dataset and reading options. The
file remembers a fingerprint of the sources (each file's path, size and modification time): when a
file is added, removed, renamed or changed the fingerprint differs and the dataset is read again.
Each tensor of an entry is kept in a NumPy ``.npy`` file of its own beside the entry, in its own
dtype (an image folder's uint8 pixels), and read back memory-mapped (copy on write): a run reads the
pages it uses, the operating system's page cache keeps them, and a pool larger than the memory
costs no more than its pages in use (:func:`source_of` tells where a mapped tensor lies, so that
another process maps the file again instead of receiving a copy). Entries are written whole (each
file a temporary file renamed into place, the tensors' files before the entry that names them), so
a run killed while writing one leaves the previous entry or none; an entry that cannot be read back,
or whose tensor files are missing or torn, is rebuilt. An entry named by a
symbolic link is written where the link points (the link stays). A cache that cannot be written (a
full disk, a directory without write permission, an entry that is no regular file) only costs the
reading time of every run: a :class:`~sslzoo.errors.DataWarning` says so and the run goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslzoo._files import unwritable
from sslzoo._ops.stored import Source
from sslzoo.errors import DataError, DataWarning

FORMAT = 2
"""The version of the entries' layout: a change makes every older entry a miss (2: tensors in
memory-mapped ``.npy`` files beside the entry)."""
MAPPED = "mapped"
"""The key of an entry's reference to a tensor's ``.npy`` file: ``{MAPPED: name, "dtype", "shape"}``."""

_maps: list[tuple[weakref.ref, str, int, int, int]] = []
"""The mapped tensors read here: (the mapping, its file, the array's offset in it, address, bytes)."""


def cache_dir() -> Path:
    """Where entries are kept: ``SSLZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/sslzoo`` or ``~/.cache/sslzoo``."""
    chosen = os.environ.get("SSLZOO_CACHE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sslzoo"


def fingerprint(files: Iterable[Path]) -> str:
    """A digest of each file's resolved path, size and modification time, in the given order."""
    digest = hashlib.sha256()
    for path in files:
        try:
            stat = path.stat()
        except OSError as exc:
            raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached(kind: str, identity: dict[str, Any], files: list[Path],
           build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``build()``'s result (tensors, strings and lists of them), from the cache when the entry of
    (``kind``, ``identity``) was built from the same ``files`` unchanged, else built and stored."""
    key = hashlib.sha256(json.dumps([FORMAT, kind, identity], sort_keys=True, default=str).encode()).hexdigest()[:32]
    path = cache_dir() / f"{kind}-{key}.pt"
    stamp = fingerprint(files)
    with contextlib.suppress(Exception):  # a missing, torn or foreign entry is a miss
        if path.is_file():  # never open a named pipe or a device: reading one may never end
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(entry, dict) and entry.get("fingerprint") == stamp:
                return _mapped(path, entry["data"])
    data = build()
    written = _store(path, {"fingerprint": stamp, "data": data})
    if written is not None:
        with contextlib.suppress(Exception):  # the entry just written, mapped: the built tensors can go
            return _mapped(path, written)
    return data


def source_of(tensor: torch.Tensor) -> Source | None:
    """Where ``tensor``'s elements lie in a cache file, if it is (a contiguous part of) a tensor this
    process read from the cache, memory-mapped; else None."""
    if not tensor.is_contiguous() or not tensor.numel():
        return None
    start = tensor.data_ptr()
    _maps[:] = [m for m in _maps if m[0]() is not None]
    for _, file, offset, address, size in _maps:
        if address <= start and start + tensor.nbytes <= address + size:
            dtype = str(np.dtype(str(tensor.dtype).removeprefix("torch.")))
            return Source(file, offset + start - address, dtype, tuple(tensor.shape))
    return None


def _mapped(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """An entry's data with each tensor file it names memory-mapped (a ValueError or OSError when a file
    is missing or not the tensor the entry says)."""
    folder = Path(os.path.realpath(path)).parent
    out = {}
    for name, value in data.items():
        if isinstance(value, dict) and MAPPED in value:
            file = folder / str(value[MAPPED])
            array = np.load(file, mmap_mode="c", allow_pickle=False)
            if not isinstance(array, np.memmap) or str(array.dtype) != value["dtype"] \
                    or list(array.shape) != list(value["shape"]):
                raise ValueError(f"{file} is not the tensor its entry names")
            tensor = torch.from_numpy(array)
            _maps.append((weakref.ref(array), str(file), array.offset, tensor.data_ptr(), tensor.nbytes))
            out[name] = tensor
        else:
            out[name] = value
    return out


def _store(path: Path, entry: dict[str, Any]) -> dict[str, Any] | None:
    """Write ``entry`` whole to what ``path`` names, each non-empty tensor of its data to a ``.npy``
    file beside it; the data as written (tensors named by their files), or a warning, and no entry and
    no temporary file left, when it cannot be written."""
    target = Path(os.path.realpath(path))
    refused = unwritable(target)
    if refused is None and target.exists() and not target.is_file():
        refused = "not a regular file (a character device)"
    if refused:
        _not_kept(path, refused)
        return None
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    token = secrets.token_hex(8)  # a fresh name per write: a reader mapping the previous file keeps it
    written: list[Path] = []
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        data = {}
        for name, value in entry["data"].items():
            if isinstance(value, torch.Tensor) and value.numel():
                array = target.with_name(f"{target.stem}.{token}.{name}.npy")
                written.append(array)
                _save_array(array, value)
                value = {MAPPED: array.name, "dtype": str(value.numpy().dtype), "shape": list(value.shape)}
            data[name] = value
        torch.save({**entry, "data": data}, temporary)
        os.replace(temporary, target)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        for leftover in (temporary, *written, *(p.with_name(f"{p.name}.tmp-{os.getpid()}") for p in written)):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "the write failed (is the disk full?)"
        _not_kept(path, f"cannot write: {reason}")
        return None
    kept = {p.name for p in written}
    for stale in target.parent.glob(f"{target.stem}.*.npy"):  # earlier writes' tensors (mapped ones stay readable)
        if stale.name not in kept:
            with contextlib.suppress(OSError):
                stale.unlink()
    return data


def _save_array(path: Path, tensor: torch.Tensor) -> None:
    """``tensor`` as the ``.npy`` file ``path``, written whole (a temporary file renamed into place)."""
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        np.save(handle, tensor.contiguous().numpy(), allow_pickle=False)
    os.replace(temporary, path)


def _not_kept(path: Path, reason: str) -> None:
    warnings.warn(DataWarning(f"tensor cache {path}: {reason}; going on without the cache (every run reads the "
                              f"files again; set SSLZOO_CACHE_DIR to a writable directory)"), stacklevel=4)
