"""Stochastic dropout for MC-dropout passes: every dropout call, whatever its training flag, draws
its mask from the run's generator through :mod:`sslzoo._ops.masks`.

:class:`StochasticDropout` is a ``TorchFunctionMode``: while it is active, ``nn.Dropout``,
``nn.Dropout1d/2d/3d``, ``nn.AlphaDropout``, ``nn.FeatureAlphaDropout`` and the functional calls
they make (``F.dropout(x, p, self.training)`` in a model's own ``forward`` included, which is
otherwise a no-op in evaluation mode) are computed here with torch's own semantics (element or
channel masks, ``1 / (1 - p)`` scaling, alpha dropout's affine correction, in place when asked)
but with masks from raw random words instead of ``bernoulli_``. Everything else runs unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from sslzoo._ops.masks import KeepBits, bit_table, unpack

SELU_ALPHA = 1.7580993408473766
"""Alpha dropout sets a dropped element to SELU's saturation value ``-SELU_ALPHA`` before its affine."""


@dataclass(frozen=True)
class DropoutCall:
    """How to read one dropout function's arguments and what it computes."""

    names: tuple[str, ...]  # parameter names after the input, in order
    feature: bool = False  # one mask per (sample, channel) rather than per element
    alpha: bool = False  # alpha dropout (SELU-preserving) rather than zero-and-rescale
    inplace: bool = False  # an in-place variant (``torch.dropout_``)
    batched_dim: int | None = None  # F.dropout1d/3d: add a batch dimension below this many dims


FUNCTIONAL = ("p", "training", "inplace")
ATEN = ("p", "train")
DROPOUT_CALLS: dict[Callable[..., Any], DropoutCall] = {
    F.dropout: DropoutCall(FUNCTIONAL),
    F.dropout1d: DropoutCall(FUNCTIONAL, feature=True, batched_dim=3),
    F.dropout2d: DropoutCall(FUNCTIONAL, feature=True),
    F.dropout3d: DropoutCall(FUNCTIONAL, feature=True, batched_dim=5),
    F.alpha_dropout: DropoutCall(FUNCTIONAL, alpha=True),
    F.feature_alpha_dropout: DropoutCall(FUNCTIONAL, feature=True, alpha=True),
    torch.dropout: DropoutCall(ATEN),
    torch.dropout_: DropoutCall(ATEN, inplace=True),
    torch.feature_dropout: DropoutCall(ATEN, feature=True),
    torch.feature_dropout_: DropoutCall(ATEN, feature=True, inplace=True),
    torch.alpha_dropout: DropoutCall(ATEN, alpha=True),
    torch.alpha_dropout_: DropoutCall(ATEN, alpha=True, inplace=True),
    torch.feature_alpha_dropout: DropoutCall(ATEN, feature=True, alpha=True),
    torch.feature_alpha_dropout_: DropoutCall(ATEN, feature=True, alpha=True, inplace=True),
}
"""Every dropout entry point: the ``torch.nn.functional`` wrappers (what the ``nn`` layers call) and
the ``torch.*`` ops under them (which a model may call directly)."""


class StochasticDropout(TorchFunctionMode):
    """While active, every dropout call is stochastic, with masks drawn from ``generator``.

    Masks are independent across calls (so across samples and passes) and reproducible: the same
    generator state and the same sequence of calls give the same masks.
    """

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.generator = generator
        self.streams: dict[float, KeepBits] = {}
        self.tables: dict[tuple[float, float, torch.dtype], Tensor] = {}
        self.buffers: dict[tuple[int, torch.dtype], Tensor] = {}  # masks, reused call after call

    def block(self, first_pass: int, passes_in_block: int) -> None:
        """The next forward pass computes these passes of a block (independent masks: nothing to do)."""

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        call = DROPOUT_CALLS.get(func)
        if call is None:
            return func(*args, **kwargs)
        bound = dict(zip(call.names, args[1:]), **kwargs)
        x, p = args[0] if args else bound.pop("input"), float(bound.get("p", 0.5))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        inplace = call.inplace or bool(bound.get("inplace", False))
        if call.batched_dim is not None and x.dim() < call.batched_dim:
            out = self.dropout(x.unsqueeze_(0) if inplace else x.unsqueeze(0), p, call, inplace)
            return out.squeeze_(0) if inplace else out.squeeze(0)
        return self.dropout(x, p, call, inplace)

    def dropout(self, x: Tensor, p: float, call: DropoutCall, inplace: bool) -> Tensor:
        """``x`` with a fresh mask applied as torch's dropout of kind ``call`` would."""
        if p == 0.0 or x.numel() == 0:
            return x
        if p == 1.0:  # as torch: every kind of dropout gives zeros
            return x.mul_(0.0) if inplace else x * 0.0
        shape = (*x.shape[:2], *[1] * (x.dim() - 2)) if call.feature else x.shape
        n = math.prod(shape)
        if p not in self.streams:
            self.streams[p] = KeepBits(p, self.generator)
        packed = self.streams[p].take(n)
        if call.alpha:  # torch's alpha dropout: kept a·x + α·a·p, dropped -α·a·(1 - p)
            a = 1.0 / math.sqrt((SELU_ALPHA * SELU_ALPHA * p + 1.0) * (1.0 - p))
            scale = self.mask(0, packed, n, 0.0, a, x, shape, call.feature)
            shift = self.mask(1, packed, n, -SELU_ALPHA * a * (1.0 - p), SELU_ALPHA * a * p, x, shape, call.feature)
            return x.mul_(scale).add_(shift) if inplace else torch.addcmul(shift, x, scale)
        mask = self.mask(0, packed, n, 0.0, 1.0 / (1.0 - p), x, shape, call.feature)
        return x.mul_(mask) if inplace else x * mask

    def mask(self, slot: int, packed: Tensor, n: int, low: float, high: float, x: Tensor,
             shape: tuple[int, ...], feature: bool) -> Tensor:
        """``high`` where an element is kept, ``low`` where dropped, shaped to multiply ``x``; in
        buffer ``slot``, valid until the next call (a fresh allocation per call cost more than the
        lookup itself on the CPU)."""
        key = (low, high, x.dtype)
        if key not in self.tables:
            self.tables[key] = bit_table(low, high, x.dtype, x.device)
        buffer = self.buffers.get((slot, x.dtype))
        if buffer is None or buffer.shape[0] < packed.numel():
            buffer = self.buffers[(slot, x.dtype)] = torch.empty(packed.numel(), 8, dtype=x.dtype, device=x.device)
        flat = unpack(self.tables[key], packed, n, out=buffer[:packed.numel()])
        if not feature and x.dim() in (4, 5) and not x.is_contiguous() and _channels_last(x):
            return flat.as_strided(x.shape, x.stride())  # the masks in x's memory order
        return flat.view(shape)


class ConsistentDropout(StochasticDropout):
    """While active, every dropout call is stochastic with *consistent* masks: pass t applies the
    same mask to every sample, so that each pass computes the model with one sampled set of
    weights (Gal & Ghahramani 2016's dropout as a weight distribution; BatchBALD's joint
    predictions over several samples need it: Kirsch et al. 2019, consistent MC dropout).

    The forward passes are run in blocks (:func:`sslzoo._ops.inference.mc_passes`): a block stacks
    ``passes_in_block`` passes of ``b`` samples, pass-major, and :meth:`block` announces it. The
    k-th dropout call of a forward pass draws its masks for all ``passes`` passes at its first
    use (from the generator, as :class:`StochasticDropout` draws) and reuses them for every later
    block. Alpha dropout is not supported.
    """

    def __init__(self, generator: torch.Generator, passes: int) -> None:
        super().__init__(generator)
        self.passes = passes
        self.masks: list[Tensor] = []  # per dropout call of a forward pass: (passes, *sample shape)
        self.slot = 0
        self.window = (0, 1)

    def block(self, first_pass: int, passes_in_block: int) -> None:
        """The next forward pass computes passes ``first_pass, ..., first_pass + passes_in_block - 1``."""
        self.window = (first_pass, passes_in_block)
        self.slot = 0

    def dropout(self, x: Tensor, p: float, call: DropoutCall, inplace: bool) -> Tensor:
        if call.alpha:
            raise ValueError("consistent MC-dropout supports dropout that zeroes and rescales, not alpha dropout")
        first, tau = self.window
        if self.slot == len(self.masks):
            ones = torch.ones((self.passes, *x.shape[1:]), dtype=x.dtype, device=x.device)
            self.masks.append(super().dropout(ones, p, call, inplace=True))
        mask = self.masks[self.slot][first:first + tau].unsqueeze(1)  # (tau, 1, *sample shape)
        self.slot += 1
        grouped = x.unflatten(0, (tau, x.shape[0] // tau))
        out = grouped.mul_(mask) if inplace else grouped * mask
        return x if inplace else out.flatten(0, 1)


def _channels_last(x: Tensor) -> bool:
    fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    return x.is_contiguous(memory_format=fmt)
