"""Batched inference: class probabilities, MC-dropout passes and test accuracy.

Everything runs in large chunks under ``torch.inference_mode()`` (or ``no_grad`` when the
result feeds a training step) and stays on the device. MC-dropout makes every dropout call
stochastic (layers and functional ``F.dropout`` alike, masks from the run's generator: see
:mod:`sslzoo._ops.dropout`), never ``model.train()`` (which would also change batch-norm). For a model
whose forward is exactly ``nn.Sequential``'s, the layers before the first random one run once per
sample and only the rest T times; any other model runs whole, T times.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.modules import module as module_hooks
from torch.utils._python_dispatch import TorchDispatchMode

from sslzoo._ops.dropout import ConsistentDropout, StochasticDropout
from sslzoo.errors import OptionError, TrainingError

DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.FeatureAlphaDropout)
CHUNK = 4096
CHUNK_ELEMENTS = CHUNK * 1024
"""Input elements per inference chunk: ``CHUNK`` samples of up to 1024 elements (MNIST's 784, a
feature vector), fewer of larger ones (341 RGB images of 64 x 64), so that one chunk's activations
stay near 100 MB whatever the images' size: the float memory a pass over the pool needs at once."""
CHANNEL_DROPOUTS = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
MAX_POOL_RANKS: dict[type[nn.Module], int] = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}
SPATIAL_LAYERS = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                  nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
                  nn.modules.batchnorm._NormBase)
"""Layers whose speed depends on an image tensor's memory format (channels_last or not): without
them in the stochastic rest, MC-dropout makes the prefix's output contiguous."""
MC_ELEMENTS = 2**20
"""MC-dropout on the CPU: activations per block of samples (4 MB in fp32): at the first random
layer for a block of the stochastic rest (run T times on it), at the widest layer for a call of
the prefix. Staying below glibc's 32 MB mmap threshold (above it every allocation is fresh pages)
ran a conv prefix 2× faster than 4096 samples at once; the rest ran within noise of its fastest
from 2^18 to 2^22 activations."""
MC_GPU_ELEMENTS = 32 * 2**20
"""MC-dropout on a GPU: activations per block (fewer, larger launches)."""

#: what forward passes compute in: "auto" is bf16 autocast on CUDA and float32 on the CPU; "bf16"
#: and "fp32" ask for one on every device (bf16 changes the numbers).
Precision = Literal["auto", "fp32", "bf16"]


@contextlib.contextmanager
def eval_mode(model: nn.Module, dropout: bool = False) -> Iterator[None]:
    """Evaluation mode (optionally with the dropout layers stochastic); restores the previous modes."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    if dropout:
        for m in model.modules():
            if isinstance(m, DROPOUT_TYPES):
                m.train()
    try:
        yield
    finally:
        for m, training in modes.items():
            m.training = training


ACTIVATIONS = ("softmax", "sigmoid")


def output_activation(model: nn.Module) -> str:
    """How ``model``'s outputs score the classes: its ``output_activation`` attribute ("softmax" or
    "sigmoid"), "softmax" when it declares none. Class probabilities are the softmax of the outputs
    either way (a sigmoid model's argmax and ranking are the same)."""
    activation = getattr(model, "output_activation", "softmax")
    if activation not in ACTIVATIONS:
        raise TrainingError(f"the model declares output_activation={activation!r}; allowed: {', '.join(ACTIVATIONS)}")
    return activation


def autocast(device: torch.device, precision: Precision = "auto") -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision`` "bf16", and for "auto" on CUDA; nothing otherwise (float32).

    On the CPU bf16 pays where the matrix units take it natively (avx512_bf16, AMX); the same code
    path otherwise.
    """
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def chunk_rows(x: torch.Tensor, chunk: int = CHUNK) -> int:
    """Samples of ``x`` per inference chunk: ``chunk``, or fewer so that a chunk holds at most
    :data:`CHUNK_ELEMENTS` input elements."""
    return max(1, min(chunk, CHUNK_ELEMENTS // max(1, math.prod(x.shape[1:]))))


def probabilities(model: nn.Module, x: torch.Tensor, ids: torch.Tensor, grad_free: str = "inference",
                  chunk: int = CHUNK, precision: Precision = "auto",
                  view: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Softmax outputs (k, C) for ``x[ids]``, dropout off, in chunks of at most ``chunk`` samples
    (:func:`chunk_rows`). ``grad_free``: "inference" or "no_grad". ``view``: a batch transform applied
    to each chunk's inputs first (e.g. an augmentation)."""
    guard = torch.inference_mode() if grad_free == "inference" else torch.no_grad()
    chunk = chunk_rows(x, chunk)
    out = []
    with guard, eval_mode(model), autocast(x.device, precision):
        for start in range(0, ids.numel(), chunk):
            inputs = x[ids[start:start + chunk]]
            out.append(torch.softmax(model(inputs if view is None else view(inputs)).float(), dim=1))
    if not out:
        with guard:
            return torch.empty(0, 0, device=x.device)
    return torch.cat(out)


class SeededOps(TorchDispatchMode):
    """Counts the random (``nondeterministic_seeded``) operators that run while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict[str, Any] | None = None) -> Any:
        if torch.Tag.nondeterministic_seeded in func.tags:
            self.count += 1
        return func(*args, **(kwargs or {}))


def sequential_layers(model: nn.Module) -> list[nn.Module] | None:
    """The layers of ``model`` if its forward pass is exactly ``nn.Sequential``'s (each layer applied
    to the previous one's output), else None: a subclass with its own ``forward``, ``__iter__`` or
    call, or hooks on the container (its own or global), computes something else."""
    if not isinstance(model, nn.Sequential):
        return None
    cls = type(model)
    if (cls.forward is not nn.Sequential.forward or cls.__iter__ is not nn.Sequential.__iter__
            or cls.__call__ is not nn.Module.__call__ or cls._call_impl is not nn.Module._call_impl):
        return None
    hooks = (model._forward_hooks, model._forward_pre_hooks, module_hooks._global_forward_hooks,
             module_hooks._global_forward_pre_hooks)
    return None if any(hooks) else list(model)


def split_at_dropout(model: nn.Module, probe: torch.Tensor) -> tuple[list[nn.Module], list[nn.Module]]:
    """(deterministic prefix, stochastic rest) of ``model``, as lists of layers applied in turn.

    For a model whose forward is exactly ``nn.Sequential``'s, the prefix is the layers before the
    first one that makes a random call (a dropout with p > 0 or any other seeded random operator)
    on ``probe`` with every dropout stochastic, plus the layers that commute exactly with it
    (:func:`commuting_layers`); for any other model the prefix is empty and the rest is the model.
    Raises :class:`OptionError` when no pass makes a random call, since then every MC-dropout pass
    would agree.
    """
    layers = sequential_layers(model)
    stages = [model] if layers is None else layers
    watch = SeededOps()
    generator = torch.Generator(device=probe.device).manual_seed(0)
    with StochasticDropout(generator), watch:
        h = probe
        for i, stage in enumerate(stages):
            before = h
            h = stage(h)
            if watch.count:
                moved = commuting_layers(stages[i], stages[i + 1:], before.dim())
                return stages[:i] + moved, stages[i:i + 1] + stages[i + 1 + len(moved):]
    raise OptionError(f"MC-dropout needs a model whose forward pass is random with dropout on, but "
                      f"{type(model).__name__} makes no dropout call with p > 0 (neither a dropout "
                      f"layer nor F.dropout), so every pass would agree; use a model with dropout (cnn, "
                      f"gal_cnn, mlp, moons_mlp) or a single-pass strategy (entropy, margin, least_confidence)")


def commuting_layers(dropout: nn.Module, following: list[nn.Module], dims: int) -> list[nn.Module]:
    """The layers right after a channel dropout that give exactly the same output before it.

    Channel dropout (``nn.Dropout1d/2d/3d``) multiplies each channel by one constant ≥ 0, and a
    max-pool over that channel's positions or a ReLU commutes with that exactly (``max(c·x) =
    c·max(x)``, ``relu(c·x) = c·relu(x)``, float products being monotone), so these layers can run
    in the prefix, once per sample, with the dropout after them (``cnn``: its pool and ReLU). Only
    layers of exactly these types, without hooks, a max-pool only on batched inputs of its rank
    (``dims``), and not returning indices."""
    if type(dropout) not in CHANNEL_DROPOUTS or _hooked(dropout):
        return []
    moved = []
    for layer in following:
        pool_rank = MAX_POOL_RANKS.get(type(layer))
        if _hooked(layer) or not (type(layer) is nn.ReLU or (pool_rank is not None and dims == pool_rank + 2
                                                              and not layer.return_indices)):
            break
        moved.append(layer)
    return moved


def _hooked(layer: nn.Module) -> bool:
    return bool(layer._forward_hooks or layer._forward_pre_hooks)


def run_layers(layers: list[nn.Module], h: torch.Tensor) -> torch.Tensor:
    """``h`` through ``layers`` in turn (``nn.Sequential``'s forward)."""
    for layer in layers:
        h = layer(h)
    return h


def mc_rows(per_sample: int, device: torch.device) -> int:
    """Samples per MC-dropout block (of the prefix or the rest) with ``per_sample`` activations."""
    return max(1, (MC_GPU_ELEMENTS if device.type == "cuda" else MC_ELEMENTS) // max(1, per_sample))


def mc_probabilities(model: nn.Module, x: torch.Tensor, ids: torch.Tensor, passes: int,
                     generator: torch.Generator, precision: Precision = "auto",
                     consistent: bool = False) -> torch.Tensor:
    """Softmax outputs (k, C, T) of ``passes`` stochastic forward passes with every dropout on,
    masks drawn from ``generator`` (:class:`sslzoo._ops.dropout.StochasticDropout`), or with
    ``consistent`` the same masks for every sample in a pass
    (:class:`sslzoo._ops.dropout.ConsistentDropout`).

    The samples go in blocks of ``MC_ELEMENTS`` activations at the first random layer (at most
    ``CHUNK`` samples). The deterministic prefix (:func:`split_at_dropout`) runs once per sample,
    in calls whose widest activation is ``MC_ELEMENTS``; the rest T times per block
    (:func:`mc_passes`).
    """
    if ids.numel() == 0:
        return torch.empty(0, 0, passes, device=x.device)
    out: torch.Tensor | None = None
    with torch.inference_mode(), eval_mode(model, dropout=True), autocast(x.device, precision):
        prefix, rest = split_at_dropout(model, x[ids[:1]])
        widths = [x[0].numel()]
        h = x[ids[:1]]
        for layer in prefix:
            h = layer(h)
            widths.append(h[0].numel())
        block_rows, sub = mc_rows(widths[-1], x.device), mc_rows(max(widths), x.device)
        rows = min(CHUNK, block_rows)
        contiguous = not any(isinstance(m, SPATIAL_LAYERS) for layer in rest for m in layer.modules())
        stochastic = ConsistentDropout(generator, passes) if consistent else StochasticDropout(generator)
        for start in range(0, ids.numel(), rows):
            block = ids[start:start + rows]
            watch = SeededOps()
            with watch:
                parts = [run_layers(prefix, x[block[i:i + sub]]) for i in range(0, block.numel(), sub)]
            if watch.count:
                raise TrainingError(f"a layer of {type(model).__name__} before its first dropout made a "
                                    f"random call for some inputs; MC-dropout cannot compute it once")
            h = parts[0] if len(parts) == 1 else torch.cat(parts)
            if contiguous:  # e.g. channels_last before a Flatten: copied once here, not T times there
                h = h.contiguous()
            probs = mc_passes(rest, h, passes, stochastic, block_rows)
            if out is None:  # one output written block by block: no pieces to concatenate
                out = torch.empty(ids.numel(), *probs.shape[1:], device=x.device)
            out[start:start + block.numel()] = probs
    assert out is not None
    return out


def mc_passes(layers: list[nn.Module], h: torch.Tensor, passes: int, stochastic: StochasticDropout,
              rows: int) -> torch.Tensor:
    """Softmax outputs (k, C, T) of ``layers`` applied ``passes`` times to the k inputs ``h`` under
    ``stochastic``, ``rows`` rows at a time: a block is a slice of ``h`` for one pass or, when all
    of ``h`` is smaller, ``h`` repeated for ``rows // k`` passes. Blocks run in order (samples, then
    passes), so the same ``rows`` and generator state give the same masks."""
    k = h.shape[0]
    together = max(1, rows // k)
    out: torch.Tensor | None = None
    for i0 in range(0, k, rows):
        block = h[i0:i0 + rows]
        b = block.shape[0]
        for t0 in range(0, passes, together):
            tau = min(together, passes - t0)
            inp = block if tau == 1 else block.expand(tau, *block.shape).reshape(tau * b, *block.shape[1:])
            stochastic.block(t0, tau)
            with stochastic:
                logits = run_layers(layers, inp).float()
            # softmax over the classes as the first dimension: torch's kernel over a short last
            # dimension (10 classes) ran 7x slower
            probs = torch.softmax(logits.reshape(tau * b, -1).t(), dim=0).reshape(-1, tau, b)
            if out is None:
                out = torch.empty(k, probs.shape[0], passes, device=h.device)
            out[i0:i0 + b, :, t0:t0 + tau] = probs.permute(2, 0, 1)
    assert out is not None
    return out


def predicted_classes(model: nn.Module, x: torch.Tensor, chunk: int = CHUNK,
                      precision: Precision = "auto") -> torch.Tensor:
    """The model's class (argmax, dropout off) of each sample of ``x``, on the device (no host sync):
    what a run reports of the test set, for the judge to score (:class:`sslzoo._engine.judge.Judge`)."""
    chunk = chunk_rows(x, chunk)
    with torch.inference_mode(), eval_mode(model), autocast(x.device, precision):
        out = [model(x[start:start + chunk]).argmax(dim=1) for start in range(0, x.shape[0], chunk)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)
