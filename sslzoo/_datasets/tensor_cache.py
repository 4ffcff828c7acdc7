"""The tensor cache: a dataset read from a user's files once, kept on disk as tensors.

Converting a folder of images (or a large CSV file) takes far longer than reading its tensors
back, so the result is stored in the cache directory (``SSLZOO_CACHE_DIR``, else
``$XDG_CACHE_HOME/sslzoo`` or ``~/.cache/sslzoo``), one file per dataset and reading options. The
file remembers a fingerprint of the sources (each file's path, size and modification time): when a
file is added, removed, renamed or changed the fingerprint differs and the dataset is read again.
Entries are written whole (a temporary file renamed into place), so a run killed while writing one
leaves the previous entry or none; an entry that cannot be read back is rebuilt. An entry named by a
symbolic link is written where the link points (the link stays). A cache that cannot be written (a
full disk, a directory without write permission, an entry that is no regular file) only costs the
reading time of every run: a :class:`~sslzoo.errors.DataWarning` says so and the run goes on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from sslzoo._files import unwritable
from sslzoo.errors import DataError, DataWarning

FORMAT = 1
"""The version of the entries' layout: a change makes every older entry a miss."""


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
                return entry["data"]
    data = build()
    _store(path, {"fingerprint": stamp, "data": data})
    return data


def _store(path: Path, entry: dict[str, Any]) -> None:
    """Write ``entry`` whole to what ``path`` names; a warning, and no entry and no temporary file left,
    when it cannot be written."""
    target = Path(os.path.realpath(path))
    refused = unwritable(target)
    if refused is None and target.exists() and not target.is_file():
        refused = "not a regular file (a character device)"
    if refused:
        _not_kept(path, refused)
        return
    temporary = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(entry, temporary)
        os.replace(temporary, target)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as a RuntimeError
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "the write failed (is the disk full?)"
        _not_kept(path, f"cannot write: {reason}")


def _not_kept(path: Path, reason: str) -> None:
    warnings.warn(DataWarning(f"tensor cache {path}: {reason}; going on without the cache (every run reads the "
                              f"files again; set SSLZOO_CACHE_DIR to a writable directory)"), stacklevel=4)
