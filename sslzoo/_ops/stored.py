"""A run's inputs kept in their stored dtype and converted per batch: :class:`StoredInputs`.

A pool of 100,000 RGB images of 64 x 64 pixels is 1.2 GB as uint8 and 4.9 GB as float32 (60 GB at
224 x 224): converting it whole before a run would make memory grow with the pool four times over.
:class:`StoredInputs` is a float tensor as far as a strategy can tell (its dtype, shape and device
are the converted inputs'), whose rows are held raw (uint8, usually memory-mapped from the dataset's
cache file) and converted when they are read: ``x[ids]``, ``x[start:stop]``, ``x[i]`` and
``x.split(n)`` gather the raw rows, move them to the device and convert them there (the dataset's
``normalize``), one batch at a time. The conversion is element by element, so a batch holds exactly
the floats the whole converted tensor would hold at those rows. Any other use of the whole tensor
(an arithmetic operator, ``clone``, ``flatten``) converts all of it first: correct, and as costly in
memory as before. The raw rows stay on the host: on a GPU, a read moves its ids to the host (one
synchronisation per batch) and copies the gathered rows to the device.

:func:`model_inputs` chooses: inputs memory-mapped from a file (their ``source``), or whose float copy
would exceed :data:`WHOLE_BUDGET`, stay stored; smaller ones are converted once, as before.
"""

from __future__ import annotations

import mmap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils._pytree import tree_map

WHOLE_BUDGET = 2**30
"""Bytes of converted (float) inputs that a run converts at once when they are not memory-mapped:
above this, the inputs stay in their stored dtype and are converted per batch."""
RESIDENT_BUDGET = 2**28
"""Bytes of mapped rows read before a process gives the mapping's pages back (``madvise``
``MADV_DONTNEED``: they stay in the operating system's page cache, and a later read maps them again
without reading the disk), so that a pass over the pool keeps at most this much of it resident."""

Convert = Callable[[torch.Tensor], torch.Tensor]
METADATA = {torch.Tensor.dim, torch.Tensor.size, torch.Tensor.numel, torch.Tensor.__len__, torch.Tensor.ndimension,
            torch.Tensor.nelement, torch.Tensor.element_size, torch.Tensor.is_floating_point, torch.Tensor.get_device}
"""Tensor methods that read only what :class:`StoredInputs` states of the converted inputs."""
COMPUTED_PROPERTIES = {"T", "mT", "H", "mH", "real", "imag", "data"}
"""Tensor properties that compute a tensor from the elements (every other property is metadata)."""


@dataclass(frozen=True)
class Source:
    """Where raw rows lie in a file: a C-ordered array of ``dtype`` and ``shape`` at byte ``offset``
    of ``path`` (what another process maps again instead of receiving a copy)."""

    path: str
    offset: int
    dtype: str
    shape: tuple[int, ...]

    def open(self) -> tuple[torch.Tensor, mmap.mmap]:
        """The rows, memory-mapped read-only, and their mapping."""
        start = self.offset - self.offset % mmap.ALLOCATIONGRANULARITY
        dtype = np.dtype(self.dtype)
        with open(self.path, "rb") as handle:
            mapping = mmap.mmap(handle.fileno(), self.offset - start + int(np.prod(self.shape)) * dtype.itemsize,
                                access=mmap.ACCESS_READ, offset=start)
        array = np.frombuffer(mapping, dtype=dtype, count=int(np.prod(self.shape)), offset=self.offset - start)
        with warnings.catch_warnings():  # read-only by design: nothing writes the rows, reads convert them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(array).view(self.shape), mapping


class StoredInputs(torch.Tensor):
    """Inputs ``convert(raw)`` on ``device``, with ``raw`` kept as it is (on the CPU) and converted per
    read (see the module's docstring). With a ``source`` (the file that ``raw`` maps), the rows are
    mapped here again, read-only, and every :data:`RESIDENT_BUDGET` bytes read the mapping's pages
    are given back; a process the inputs are sent to maps the file too."""

    raw: torch.Tensor
    convert: Convert
    source: Source | None
    mapping: mmap.mmap | None
    unreleased: int

    @staticmethod
    def __new__(cls, raw: torch.Tensor, convert: Convert, device: torch.device,
                source: Source | None = None) -> StoredInputs:
        mapping = None
        if source is not None:
            raw, mapping = source.open()
        return cls._wrap(raw, convert, device, source, mapping)

    def __init__(self, raw: torch.Tensor, convert: Convert, device: torch.device, source: Source | None = None) -> None:
        super().__init__()

    @classmethod
    def _wrap(cls, raw: torch.Tensor, convert: Convert, device: torch.device, source: Source | None,
              mapping: mmap.mmap | None) -> StoredInputs:
        probe = convert(raw[:1].to(device))
        made = torch.Tensor._make_wrapper_subclass(cls, (raw.shape[0], *probe.shape[1:]), dtype=probe.dtype,
                                                   device=device)
        made.raw, made.convert, made.source, made.mapping, made.unreleased = raw, convert, source, mapping, 0
        return made

    def __repr__(self, *, tensor_contents: Any = None) -> Any:  # type: ignore[override]
        return (f"StoredInputs(shape={tuple(self.shape)}, dtype={self.dtype}, device={self.device}, "
                f"stored as {self.raw.dtype})")

    def rows(self, index: Any) -> torch.Tensor:
        """The converted rows of ``index`` (a slice, an int, or a tensor of ids or of a mask)."""
        if isinstance(index, int):
            return self.convert(self._read(index).unsqueeze(0).to(self.device))[0]
        if isinstance(index, torch.Tensor) and index.device != self.raw.device:
            index = index.cpu()
        return self.convert(self._read(index).to(self.device, non_blocking=True))

    def _read(self, index: Any) -> torch.Tensor:
        """The raw rows of ``index`` (a view, for a slice); past :data:`RESIDENT_BUDGET` bytes read, the
        mapping's pages given back."""
        rows = self.raw[index]  # a view of a slice stays valid: a given-back page is mapped again when read
        self.unreleased += rows.nbytes
        if self.mapping is not None and self.unreleased > RESIDENT_BUDGET and hasattr(mmap, "MADV_DONTNEED"):
            self.mapping.madvise(mmap.MADV_DONTNEED)
            self.unreleased = 0
        return rows

    def whole(self) -> torch.Tensor:
        """Every input converted: as much memory as the float copy this class exists to avoid."""
        return self.rows(slice(None))

    def to(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """On another device, still stored (the raw rows stay on the CPU); to another dtype or memory
        format, converted whole."""
        device, dtype, _, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if dtype in (None, self.dtype) and memory_format in (None, torch.preserve_format):
            return StoredInputs._wrap(self.raw, self.convert, device or self.device, self.source, self.mapping)
        return self.whole().to(*args, **kwargs)

    def share_memory_(self) -> StoredInputs:
        """The raw rows in shared memory unless a file maps them (another process maps the file)."""
        if self.source is None:
            self.raw.share_memory_()
        return self

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        raw = None if self.source is not None else self.raw
        return _rebuild, (raw, self.source, self.convert, str(self.device))

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: tuple = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if args and isinstance(args[0], StoredInputs):
            me = args[0]
            if func is torch.Tensor.__getitem__:
                picked = _rows_of(me, args[1])
                if picked is not None:
                    return picked
            elif func is torch.Tensor.split:
                size = args[1] if len(args) > 1 else kwargs.get("split_size")
                if isinstance(size, int) and (args[2] if len(args) > 2 else kwargs.get("dim", 0)) == 0:
                    return tuple(me.rows(slice(s, s + size)) for s in range(0, me.shape[0], size))
        with torch._C.DisableTorchFunctionSubclass():
            if func in METADATA or (getattr(func, "__name__", "") == "__get__"
                                    and getattr(func.__self__, "__name__", "") not in COMPUTED_PROPERTIES):
                return func(*args, **kwargs)  # the converted inputs' shape, dtype, device: nothing to convert
            return func(*tree_map(_converted, args), **tree_map(_converted, kwargs))

    @classmethod
    def __torch_dispatch__(cls, func: Any, types: Any, args: tuple = (),  # type: ignore[override]
                           kwargs: dict[str, Any] | None = None) -> Any:
        return func(*tree_map(_converted, args), **tree_map(_converted, kwargs or {}))


def _converted(value: Any) -> Any:
    return value.whole() if isinstance(value, StoredInputs) else value


def _rows_of(inputs: StoredInputs, index: Any) -> torch.Tensor | None:
    """``inputs[index]`` read row by row, or None for an index that is not only rows."""
    if isinstance(index, list):
        index = torch.as_tensor(index)
    if isinstance(index, (int, slice)) or (isinstance(index, torch.Tensor) and index.dim() == 1):
        return inputs.rows(index)
    if isinstance(index, tuple) and index and isinstance(index[0], (int, slice, list, torch.Tensor)):
        first = _rows_of(inputs, index[0])
        if first is None:
            return None
        return first[index[1:]] if isinstance(index[0], int) else first[(slice(None),) + index[1:]]
    return None


def _rebuild(raw: torch.Tensor | None, source: Source | None, convert: Convert, device: str) -> StoredInputs:
    if source is not None:
        rows, mapping = source.open()
        return StoredInputs._wrap(rows, convert, torch.device(device), source, mapping)
    assert raw is not None
    return StoredInputs(raw, convert, torch.device(device))


def model_inputs(raw: torch.Tensor, convert: Convert, device: torch.device,
                 source: Source | None = None) -> torch.Tensor:
    """The float inputs a run trains on: ``raw`` stored and converted per batch
    (:class:`StoredInputs`) when a file maps it (``source``) or its float copy would exceed
    :data:`WHOLE_BUDGET`, else ``convert`` of all of it on ``device``, as a dataset's ``normalize``
    always did."""
    if raw.shape[0] and raw.dim() > 1 and not raw.dtype.is_floating_point and (
            source is not None or raw.numel() * 4 > WHOLE_BUDGET):
        return StoredInputs(raw, convert, device, source)
    return convert(raw.to(device))
